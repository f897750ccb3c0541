"""The one reader of examples, and the one fixed sample of them.

Every step that reads examples (the Trainers, the LabelFreeEvaluator, the EmbeddingIndexer, the
RunReport) reads them here, through TFX's own reader: a `tf_dataset_factory` (TFXIO,
https://www.tensorflow.org/tfx/guide/tfxio), the Trainer's `fn_args.data_accessor.tf_dataset_factory`
or, outside a Trainer, the same factory made from the Examples artifact (`artifact_reader`). So the
record format and compression are whatever the artifact recorded, never a hand-written GZIP loop
(`tests/test_architecture.py` fails on one).

The steps that *look at* embeddings (the kNN monitor and untrained baselines in the SimSiam Trainer,
the probe's training sample, the label-free gate, the report's maps and neighbour grids, the index's
thumbnails) each use a bounded sample: the images with the smallest `sample_key(image_id)`, at most
`sample_size` of them. A hash of the id, not a random draw, so the same photos are chosen in every run
and on every machine, and a streaming pass keeps only the sample in memory (`HashSample`).
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from components import features as F

# Images in each "look at the embeddings" sample: all of Flowers (3,119 photos; 2,568 train) so its
# results do not change, and 5,000 stored 72-px images (15.6 KB each) hold 78 MB.
DEFAULT_SAMPLE_SIZE = 5000
READ_BATCH = 256  # examples per read: large enough to amortise the per-batch parse, small in memory

# The raw tf.Example features that ImageExampleGen writes (every example has every one:
# components/ingest/executor.py `make_example`), as a tf.io feature spec, by name.
RAW_FEATURES = {F.IMAGE: "string", F.LABEL: "int64", F.CLASS_NAME: "string", F.IMAGE_ID: "string"}


def sample_key(image_id: str | bytes) -> int:
    """A 64-bit key of an image id, the same in every process and on every machine (BLAKE2b, salted so
    the sample is independent of the split, which hashes the same ids: components/ingest/splits.py)."""
    data = image_id.encode("utf-8") if isinstance(image_id, str) else bytes(image_id)
    return int.from_bytes(hashlib.blake2b(b"simsiam-tfx/sample/" + data, digest_size=8).digest(), "big")


class HashSample:
    """The `size` items with the smallest `sample_key` of a stream of (image id, item): a bottom-k
    sample (Cohen & Kaplan, "Summarizing data using bottom-k sketches", PODC 2007). The same ids are
    chosen whatever the stream's order or length; memory holds `size` items at most.

    Raises ValueError for a size below 1."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"sample size {size} must be at least 1")
        self.size, self.seen = int(size), 0
        self._heap: list[tuple[int, str, Any]] = []  # (-key, id, item): the largest key on top

    def offer(self, image_id: str, item: Any | Callable[[], Any]) -> bool:
        """Adds (`image_id`, `item`) if its key is among the `size` smallest so far; returns whether it
        was kept. `item` may be a zero-argument callable, called only when kept (a decode saved)."""
        self.seen += 1
        key = sample_key(image_id)
        if len(self._heap) >= self.size and -self._heap[0][0] <= key:
            return False
        value = item() if callable(item) else item
        entry = (-key, image_id, value)
        if len(self._heap) < self.size:
            heapq.heappush(self._heap, entry)
        else:
            heapq.heapreplace(self._heap, entry)
        return True

    def ids(self) -> list[str]:
        """The sample's ids by ascending key."""
        return [image_id for _, image_id, _ in sorted(self._heap, key=lambda e: -e[0])]

    def items(self) -> list[Any]:
        """The sample's items by ascending key (an order independent of the stream's)."""
        return [item for _, _, item in sorted(self._heap, key=lambda e: -e[0])]


def stratified_ids(ids: Sequence[str], labels: Sequence[int], size: int) -> set[str]:
    """The ids of a class-stratified hash sample of at most `size` of `ids`: class c keeps its
    `round(size * n_c / N)` ids of smallest `sample_key` (at least one of each class present), so the
    class proportions are the data's. All ids when `size >= len(ids)`. `labels`: int per id."""
    if size >= len(ids):
        return set(ids)
    by_class: dict[int, list[str]] = {}
    for image_id, label in zip(ids, labels):
        by_class.setdefault(int(label), []).append(image_id)
    chosen: set[str] = set()
    for members in by_class.values():
        quota = max(1, round(size * len(members) / len(ids)))
        chosen.update(sorted(members, key=sample_key)[:quota])
    return chosen


def feature_schema(features: dict[str, str]):
    """A tensorflow_metadata Schema of fixed-length scalar features {name: "string" | "int64" |
    "float32"}: what the reader parses (every other feature of the records is skipped)."""
    import tensorflow as tf
    from tensorflow_transform.tf_metadata import schema_utils

    return schema_utils.schema_from_feature_spec(
        {name: tf.io.FixedLenFeature([], tf.as_dtype(dtype)) for name, dtype in features.items()}
    )


def artifact_reader(examples) -> Callable:
    """The TFXIO dataset factory of an Examples artifact, as TFX makes it for a Trainer's
    `fn_args.data_accessor.tf_dataset_factory` (`tfxio_utils.get_tf_dataset_factory_from_artifact`):
    `(file patterns, TensorFlowDatasetOptions, schema) -> tf.data.Dataset`."""
    from tfx.components.util import tfxio_utils

    return tfxio_utils.get_tf_dataset_factory_from_artifact([examples], [])


def tf_example_reader() -> Callable:
    """The TFXIO dataset factory for tf.Example records without an artifact at hand (a benchmark reading
    a run's `Split-<name>` folder): the reader `artifact_reader` gives for ExampleGen's and Transform's
    artifacts (payload format tf.Example, compression detected from the files)."""
    from tfx.components.util import tfxio_utils
    from tfx.proto import example_gen_pb2

    def dataset_factory(file_patterns, options, schema):
        return tfxio_utils.make_tfxio(
            file_pattern=file_patterns,
            telemetry_descriptors=[],
            payload_format=example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE,
            schema=schema,
        ).TensorFlowDataset(options)

    return dataset_factory


def split_files(examples, split: str) -> list[str]:
    """The file pattern of `split` of an Examples artifact (TFX's `Split-<name>` folder)."""
    from tfx.types import artifact_utils

    return [f"{artifact_utils.get_split_uri([examples], split).rstrip('/')}/*"]


def read(
    dataset_factory: Callable,
    file_patterns: str | Sequence[str],
    schema,
    batch_size: int = READ_BATCH,
    shuffle_seed: int | None = None,
    shuffle_buffer: int = 0,
):
    """One pass over the examples of `file_patterns` as a tf.data.Dataset of dicts {feature: `[B]`}.

    `schema` (a Schema proto: `feature_schema`, or the Transform's `transformed_metadata.schema`) names
    the features parsed. In file order without `shuffle_seed`; with it, files and then records through
    a `shuffle_buffer`-record buffer are shuffled by that seed (TFXIO's `TensorFlowDatasetOptions`), the
    same order on every call. Raises FileNotFoundError when no file matches."""
    import tensorflow as tf
    from tfx_bsl.public import tfxio

    patterns = [file_patterns] if isinstance(file_patterns, str) else list(file_patterns)
    if not any(tf.io.gfile.glob(p) for p in patterns):
        raise FileNotFoundError(f"no examples match {patterns}")
    shuffle = shuffle_seed is not None
    options = tfxio.TensorFlowDatasetOptions(
        batch_size=batch_size,
        num_epochs=1,
        shuffle=shuffle,
        shuffle_seed=shuffle_seed if shuffle else None,
        shuffle_buffer_size=max(1, shuffle_buffer) if shuffle else 1,
    )
    return dataset_factory(patterns, options, schema)


def numpy_batches(
    dataset_factory: Callable, file_patterns: str | Sequence[str], schema, batch_size: int = READ_BATCH
) -> Iterator[dict[str, np.ndarray]]:
    """`read` in file order as numpy: {feature: `[B]`} per batch; bytes features stay bytes."""
    for batch in read(dataset_factory, file_patterns, schema, batch_size).as_numpy_iterator():
        yield {name: np.asarray(values).reshape(-1) for name, values in batch.items()}


def stored_image(serialized: bytes) -> np.ndarray:
    """The Transform's stored image: uint8 `[T, T, 3]` from its `image_u8` feature (a serialized tensor,
    components/transform.py)."""
    import tensorflow as tf

    return tf.io.parse_tensor(serialized, tf.uint8).numpy()


def sample_split(
    dataset_factory: Callable,
    file_patterns: str | Sequence[str],
    size: int,
    image_feature: str = F.IMAGE_U8,
    decode: Callable[[bytes], Any] = stored_image,
) -> tuple[list[str], list[Any], np.ndarray, dict[str, int]]:
    """The hash sample (`HashSample`) of at most `size` examples of a split, in one streaming pass:
    (image ids, decoded images, int64 labels `[M]` (-1: unlabelled), {"examples": N, "labelled": L}
    counted over the whole split).

    `image_feature` is decoded by `decode` for the kept examples only (default: the Transform's stored
    uint8 images). Works on the raw examples too (`image_feature=F.IMAGE`, `decode=bytes`)."""
    schema = feature_schema({image_feature: "string", F.IMAGE_ID: "string", F.LABEL: "int64"})
    sample, labelled = HashSample(size), 0
    for batch in numpy_batches(dataset_factory, file_patterns, schema):
        labelled += int(np.sum(batch[F.LABEL] >= 0))
        for image_id, image, label in zip(batch[F.IMAGE_ID], batch[image_feature], batch[F.LABEL]):
            sample.offer(image_id.decode(), lambda image=image, label=label: (decode(image), int(label)))
    kept = sample.items()
    labels = np.asarray([label for _, label in kept], np.int64)
    return sample.ids(), [image for image, _ in kept], labels, {"examples": sample.seen, "labelled": labelled}


def count(dataset_factory: Callable, file_patterns: str | Sequence[str]) -> int:
    """The number of examples of `file_patterns`, in one streaming pass (only the id is parsed)."""
    return sum(
        len(b[F.IMAGE_ID])
        for b in numpy_batches(dataset_factory, file_patterns, feature_schema({F.IMAGE_ID: "string"}))
    )


def ids_and_labels(dataset_factory: Callable, file_patterns: str | Sequence[str]) -> tuple[list[str], np.ndarray]:
    """(image ids, int64 labels `[N]`) of every example, in file order: 100-odd bytes a row."""
    ids, labels = [], []
    for batch in numpy_batches(
        dataset_factory, file_patterns, feature_schema({F.IMAGE_ID: "string", F.LABEL: "int64"})
    ):
        ids.extend(v.decode() for v in batch[F.IMAGE_ID])
        labels.append(batch[F.LABEL].astype(np.int64))
    return ids, (np.concatenate(labels) if labels else np.zeros(0, np.int64))
