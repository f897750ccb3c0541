"""A Transform output split written by hand, for tests of the steps after Transform without running it.

    from tests.fakes.transformed import write_transformed_file
    write_transformed_file(tmp_path / "Split-eval" / "data.gz", images, labels=[-1] * len(images))

Each record is what components/transform.py writes: GZIP TFRecords of tf.Examples whose `image_u8` is a
serialized uint8 `[T, T, 3]` tensor, beside `image_id`, `label`, `class_name` and the pixel statistics
when the test gives them. The features a test leaves out are absent, so a test states what its reader
needs. TensorFlow is imported only when a file is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def transformed_example(
    image: np.ndarray,
    image_id: str | None = None,
    label: int | None = None,
    class_name: str | None = None,
    floats: Mapping[str, Sequence[float]] | None = None,
) -> bytes:
    """One serialized tf.Example: `image` uint8 `[T, T, 3]` as `image_u8`, and each given field."""
    import tensorflow as tf

    from components import features as F

    def _bytes(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError(f"need a uint8 [T, T, 3] image, got {image.dtype} {image.shape}")
    feature = {F.IMAGE_U8: _bytes(tf.io.serialize_tensor(tf.constant(image)).numpy())}
    if image_id is not None:
        feature[F.IMAGE_ID] = _bytes(image_id.encode())
    if label is not None:
        feature[F.LABEL] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)]))
    if class_name is not None:
        feature[F.CLASS_NAME] = _bytes(class_name.encode())
    for key, values in (floats or {}).items():
        feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_transformed_file(
    path: str | Path,
    images: np.ndarray,
    image_ids: Sequence[str] | None = None,
    labels: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    floats: Mapping[str, Sequence[float]] | None = None,
) -> str:
    """`images` uint8 `[N, T, T, 3]` as one GZIP TFRecord file at `path` (parents created), record i with
    `image_ids[i]`, `labels[i]`, `class_names[i]` when given and the same `floats` on every record.
    Returns `path` as a string."""
    import tensorflow as tf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for i, image in enumerate(images):
            writer.write(
                transformed_example(
                    image,
                    image_id=None if image_ids is None else image_ids[i],
                    label=None if labels is None else labels[i],
                    class_name=None if class_names is None else class_names[i],
                    floats=floats,
                )
            )
    return str(path)
