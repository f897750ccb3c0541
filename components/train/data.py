"""Reading the Transform output inside the Trainers (TensorFlow glue, kept out of models/)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from components import features as F


def _files(file_patterns: str | Sequence[str]) -> list[str]:
    patterns = [file_patterns] if isinstance(file_patterns, str) else list(file_patterns)
    files = sorted(f for p in patterns for f in tf.io.gfile.glob(p))
    if not files:
        raise FileNotFoundError(f"no transformed examples match {patterns}")
    return files


def _parsed(file_patterns: str | Sequence[str], tft_output: tft.TFTransformOutput) -> tf.data.Dataset:
    spec = tft_output.transformed_feature_spec()
    records = tf.data.TFRecordDataset(_files(file_patterns), compression_type="GZIP")
    return records.map(lambda r: tf.io.parse_single_example(r, spec), num_parallel_calls=tf.data.AUTOTUNE)


def _image(features: dict[str, tf.Tensor], image_size: int) -> tf.Tensor:
    image = tf.io.parse_tensor(features[F.IMAGE_U8], tf.uint8)
    return tf.ensure_shape(image, [image_size, image_size, 3])


def image_dataset(
    file_patterns: str | Sequence[str],
    tft_output: tft.TFTransformOutput,
    image_size: int,
    batch_size: int,
    shuffle_seed: int | None = 0,
) -> tf.data.Dataset:
    """Endless, shuffled batches of uint8 images [B, S, S, 3] for SimSiam (labels are never read)."""
    images = _parsed(file_patterns, tft_output).map(lambda f: _image(f, image_size)).cache()
    if shuffle_seed is not None:
        images = images.shuffle(4096, seed=shuffle_seed, reshuffle_each_iteration=True)
    return images.repeat().batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def load_split(
    file_patterns: str | Sequence[str], tft_output: tft.TFTransformOutput, image_size: int
) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """All images of a split as numpy: (uint8 [N, S, S, 3], int64 labels [N], {label: class name})."""
    images, labels, names = [], [], {}
    for f in _parsed(file_patterns, tft_output).batch(512).as_numpy_iterator():
        batch = [tf.io.parse_tensor(s, tf.uint8).numpy() for s in f[F.IMAGE_U8]]
        images.extend(img.reshape(image_size, image_size, 3) for img in batch)
        labels.extend(int(v) for v in f[F.LABEL])
        names.update({int(v): n.decode() for v, n in zip(f[F.LABEL], f[F.CLASS_NAME])})
    return np.stack(images), np.asarray(labels, np.int64), names


def pixel_stats(file_patterns: str | Sequence[str], tft_output: tft.TFTransformOutput) -> tuple[list, list]:
    """The per-channel mean/std that the TFT analyzers computed (identical on every example)."""
    first = next(iter(_parsed(file_patterns, tft_output).take(1)))
    return first[F.PIXEL_MEAN].numpy().tolist(), first[F.PIXEL_STD].numpy().tolist()
