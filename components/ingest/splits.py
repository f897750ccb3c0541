"""The train/eval split of the ImageExampleGen, reproduced in pure Python (no TensorFlow, no protobuf).

TFX's ExampleGen (with `SplitConfig(partition_feature_name="image_id")`) assigns an example to a split by
`int(sha256(feature.SerializeToString(deterministic=True)).hexdigest(), 16) % total_buckets`, then
bisects the cumulative hash buckets (`_PartitionFn` in tfx/components/example_gen/
base_example_gen_executor.py). The feature is `Feature(bytes_list=BytesList(value=[image_id]))`, whose
serialization is short enough to write by hand, so benchmarks on machines without TensorFlow can tell
which split an image went to.
"""

from __future__ import annotations

import bisect
import hashlib

TRAIN_SPLIT, EVAL_SPLIT = "train", "eval"
SPLIT_NAMES = (TRAIN_SPLIT, EVAL_SPLIT)
DEFAULT_EVAL_PERCENT = 15
# Ingestion fails when more than this share of the listed files is rejected (a wrong folder, a
# broken copy); below it, each rejected file is reported and the run goes on.
DEFAULT_MAX_REJECTED_FRACTION = 0.1


def split_buckets(eval_percent: int = DEFAULT_EVAL_PERCENT) -> list[tuple[str, int]]:
    """[(split name, hash buckets)] in TFX order: train gets 100 - eval_percent buckets, eval the rest."""
    if not isinstance(eval_percent, int) or not 1 <= eval_percent <= 99:
        raise ValueError(f"eval_percent must be an integer from 1 to 99, got {eval_percent!r}")
    return [("train", 100 - eval_percent), ("eval", eval_percent)]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def bytes_feature_proto(value: bytes) -> bytes:
    """`tf.train.Feature(bytes_list=tf.train.BytesList(value=[value])).SerializeToString()`."""
    bytes_list = b"\x0a" + _varint(len(value)) + value  # BytesList.value: field 1, length-delimited
    return b"\x0a" + _varint(len(bytes_list)) + bytes_list  # Feature.bytes_list: field 1


def split_of(image_id: str | bytes, eval_percent: int = DEFAULT_EVAL_PERCENT) -> str:
    """The split ("train" or "eval") TFX puts the example with this `image_id` in."""
    if isinstance(image_id, str):
        image_id = image_id.encode("utf-8")
    buckets = split_buckets(eval_percent)
    cumulative = [sum(n for _, n in buckets[: i + 1]) for i in range(len(buckets))]
    bucket = int(hashlib.sha256(bytes_feature_proto(image_id)).hexdigest(), 16) % cumulative[-1]
    return buckets[bisect.bisect(cumulative, bucket)][0]


# The ExampleGen's output splits. Labelled images go to "train"/"eval", unlabelled ones to
# "unlabeled_train"/"unlabeled_eval", by the same hash rule: SimSiam trains on both train splits, the
# kNN monitor, the linear probe and the Evaluator read only the labelled ones, and the label-free gate
# reads "unlabeled_eval" when there are no labels at all.
UNLABELED_PREFIX = "unlabeled_"


def split_name(hash_split: str, labeled: bool) -> str:
    """The output split of an image: its hash split ("train"/"eval"), prefixed for unlabelled images."""
    return hash_split if labeled else f"{UNLABELED_PREFIX}{hash_split}"


def output_splits(labeled: bool, unlabeled: bool) -> list[str]:
    """The ExampleGen's split names, in order, for data with labelled and/or unlabelled images."""
    if not (labeled or unlabeled):
        raise ValueError("the data must hold labelled or unlabelled images")
    return [split_name(s, True) for s in SPLIT_NAMES if labeled] + [
        split_name(s, False) for s in SPLIT_NAMES if unlabeled
    ]


def canonical_ids(duplicate_groups: list[list[str]]) -> dict[str, str]:
    """{image_id: the group's smallest id} for every image in a group of byte-identical copies.

    Each copy is then split by its group's smallest id (`split_of(canonical.get(id, id))`), so all
    copies of an image land in the same split: a copy in train and another in eval would let the
    evaluation see training images and inflate every figure. Images without a copy keep their own id,
    so their split does not depend on whether duplicates exist elsewhere."""
    return {image_id: min(group) for group in duplicate_groups if len(group) > 1 for image_id in group}
