"""components.ingest.splits reproduces TFX's hash split on image_id without TensorFlow."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from components.ingest.splits import bytes_feature_proto, split_buckets, split_of

IDS = [f"{c}/{i:05d}_{c[:3]}.jpg" for c in ("daisy", "roses", "tulips") for i in range(300)] + [
    "roses/nested/deeper/ünïcödé 1.JPEG",
    "x" * 200 + ".png",  # longer than 127 bytes: two-byte length varints
    "a/" + "y" * 20_000 + ".jpg",  # three-byte varint
]


def test_feature_bytes_equal_tensorflow_serialization() -> None:
    import tensorflow as tf

    for image_id in IDS[:5] + IDS[-3:]:
        value = image_id.encode()
        feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
        assert bytes_feature_proto(value) == feature.SerializeToString(deterministic=True)


@pytest.mark.parametrize("eval_percent", [15, 30])
def test_split_equals_tfx_partition_fn(eval_percent: int) -> None:
    import tensorflow as tf
    from tfx.components.example_gen.base_example_gen_executor import _PartitionFn

    from components.ingest.component import output_config

    split_config = output_config(eval_percent).split_config
    buckets = [100 - eval_percent, 100]
    names = [s.name for s in split_config.splits]
    for image_id in IDS:
        example = tf.train.Example(
            features=tf.train.Features(
                feature={
                    "image_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_id.encode()])),
                    "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[3])),
                }
            )
        )
        assert split_of(image_id, eval_percent) == names[_PartitionFn(example, 2, buckets, split_config)]


def test_split_by_hand_for_one_id() -> None:
    # Feature{bytes_list{value:["a/1.jpg"]}} = 0a 09 0a 07 "a/1.jpg"; bucket = sha256 as an integer % 100.
    key = b"\x0a\x09\x0a\x07a/1.jpg"
    bucket = int(hashlib.sha256(key).hexdigest(), 16) % 100
    for eval_percent in range(1, 100):  # train holds buckets [0, 100 - eval_percent)
        assert split_of("a/1.jpg", eval_percent) == ("train" if bucket < 100 - eval_percent else "eval")


def test_eval_share_is_close_to_the_percent_and_str_equals_bytes() -> None:
    eval_share = sum(split_of(i) == "eval" for i in IDS) / len(IDS)
    assert 0.12 < eval_share < 0.18
    assert all(split_of(i) == split_of(i.encode()) for i in IDS[:50])


def test_buckets_and_bad_percent() -> None:
    assert split_buckets(15) == [("train", 85), ("eval", 15)]
    for bad in (0, 100, -5, 15.5):
        with pytest.raises(ValueError, match="eval_percent"):
            split_buckets(bad)


def test_module_needs_no_tensorflow() -> None:
    code = "import sys, components.ingest.splits as s; s.split_of('a/b.jpg'); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
