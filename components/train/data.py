"""Reading the Transform output inside the Trainers (TensorFlow glue, kept out of models/).

Every read goes through TFX's `fn_args.data_accessor.tf_dataset_factory` with the transformed
schema, so the Trainers follow whatever format the Transform artifact recorded (TFX taxi template,
`models/keras_model/model.py`) instead of assuming GZIP TFRecords.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import DataAccessor
from tfx_bsl.public import tfxio

from components import features as F

_SHUFFLE_BUFFER = 1 << 16  # images; a full shuffle of any split that fits in memory (it is cached)


def _files(file_patterns: str | Sequence[str]) -> list[str]:
    patterns = [file_patterns] if isinstance(file_patterns, str) else list(file_patterns)
    if not any(tf.io.gfile.glob(p) for p in patterns):
        raise FileNotFoundError(f"no transformed examples match {patterns}")
    return patterns


def _batches(
    data_accessor: DataAccessor,
    file_patterns: str | Sequence[str],
    tft_output: tft.TFTransformOutput,
    batch_size: int = 256,
) -> tf.data.Dataset:
    """One pass, in file order: dicts of transformed features, batched (`[B]` per scalar feature)."""
    options = tfxio.TensorFlowDatasetOptions(batch_size=batch_size, num_epochs=1, shuffle=False)
    return data_accessor.tf_dataset_factory(_files(file_patterns), options, tft_output.transformed_metadata.schema)


def _image(serialized: tf.Tensor, image_size: int) -> tf.Tensor:
    image = tf.io.parse_tensor(tf.reshape(serialized, []), tf.uint8)
    return tf.ensure_shape(image, [image_size, image_size, 3])


def image_dataset(
    data_accessor: DataAccessor,
    file_patterns: str | Sequence[str],
    tft_output: tft.TFTransformOutput,
    image_size: int,
    batch_size: int,
    steps_per_epoch: int,
    epochs: int,
    shuffle_seed: int = 0,
    initial_epoch: int = 0,
    element_shard: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """Shuffled batches of stored uint8 images `[B, T, T, 3]` (T = `image_size`) for SimSiam, for the
    epochs `initial_epoch` .. `epochs - 1` (labels are never read); `steps_per_epoch` full batches per
    epoch (partial batches are dropped: fixed shapes for XLA).

    Epoch e's order is a full shuffle seeded by (`shuffle_seed`, e) alone, so a run resumed at epoch
    e reads what an uninterrupted run reads in epoch e, not epoch 0's order again.

    `element_shard` = (num_shards, index): keep every num_shards-th image of the files' stream, from
    the index-th (one worker's share, components/train/cluster.py); None: every image.
    """
    images = _batches(data_accessor, file_patterns, tft_output).unbatch()
    if element_shard is not None:
        images = images.shard(*element_shard)
    images = images.map(lambda f: _image(f[F.IMAGE_U8], image_size), num_parallel_calls=tf.data.AUTOTUNE).cache()
    return epoch_batches(images, batch_size, steps_per_epoch, shuffle_seed, initial_epoch, epochs).prefetch(
        tf.data.AUTOTUNE
    )


def epoch_batches(
    items: tf.data.Dataset, batch_size: int, steps_per_epoch: int, shuffle_seed: int, initial_epoch: int, epochs: int
) -> tf.data.Dataset:
    """Batches of `items` for epochs `initial_epoch` .. `epochs - 1`: each epoch a full shuffle seeded
    by (`shuffle_seed`, epoch), cut into `steps_per_epoch` batches of `batch_size`.

    One shuffled dataset per epoch, each with a Python-int seed, chained by `choose_from_datasets`:
    `shuffle` cannot take the epoch as a tensor seed (with a global seed of 0, TensorFlow's
    `get_seed` tests the seed pair with a Python `==`, which a symbolic tensor cannot answer).
    """
    per_epoch = [
        items.shuffle(_SHUFFLE_BUFFER, seed=shuffle_seed * 1_000_003 + e, reshuffle_each_iteration=False)
        .batch(batch_size, drop_remainder=True)
        .take(steps_per_epoch)
        for e in range(initial_epoch, epochs)
    ]
    if not per_epoch:
        raise ValueError(f"no epoch left to train: initial_epoch={initial_epoch} >= epochs={epochs}")
    order = tf.data.Dataset.range(len(per_epoch)).flat_map(
        lambda i: tf.data.Dataset.from_tensors(i).repeat(steps_per_epoch)
    )
    return tf.data.Dataset.choose_from_datasets(per_epoch, order)


def load_split(
    data_accessor: DataAccessor,
    file_patterns: str | Sequence[str],
    tft_output: tft.TFTransformOutput,
    image_size: int,
) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """All images of a split as numpy: (uint8 `[N, T, T, 3]`, int64 labels `[N]`, {label: class name})."""
    images, labels, names = [], [], {}
    for f in _batches(data_accessor, file_patterns, tft_output).as_numpy_iterator():
        serialized = np.asarray(f[F.IMAGE_U8]).reshape(-1)
        images.extend(tf.io.parse_tensor(s, tf.uint8).numpy().reshape(image_size, image_size, 3) for s in serialized)
        batch_labels = np.asarray(f[F.LABEL]).reshape(-1)
        labels.extend(int(v) for v in batch_labels)
        names.update({int(v): n.decode() for v, n in zip(batch_labels, np.asarray(f[F.CLASS_NAME]).reshape(-1))})
    return np.stack(images), np.asarray(labels, np.int64), names


def pixel_stats(
    data_accessor: DataAccessor, file_patterns: str | Sequence[str], tft_output: tft.TFTransformOutput
) -> tuple[list, list]:
    """The per-channel mean/std that the TFT analyzers computed (identical on every example)."""
    first = next(iter(_batches(data_accessor, file_patterns, tft_output, batch_size=1)))
    mean, std = (np.asarray(first[k]).reshape(-1, 3)[0] for k in (F.PIXEL_MEAN, F.PIXEL_STD))
    return mean.tolist(), std.tolist()


def count_examples(
    data_accessor: DataAccessor, file_patterns: str | Sequence[str], tft_output: tft.TFTransformOutput
) -> int:
    """The number of examples in `file_patterns` (one pass over them)."""
    return int(_batches(data_accessor, file_patterns, tft_output).reduce(0, lambda n, f: n + tf.shape(f[F.LABEL])[0]))
