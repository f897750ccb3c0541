"""Reading the Transform output inside the Trainers (TensorFlow glue, kept out of models/).

Every read goes through TFX's `fn_args.data_accessor.tf_dataset_factory` (TFXIO) by way of
components/examples.py, the one reader, so the Trainers follow whatever format the Transform
artifact recorded (TFX taxi template, `models/keras_model/model.py`) instead of assuming GZIP
TFRecords. Training streams: memory holds a bounded shuffle buffer, never the split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from components import examples
from components import features as F

_CACHED_SHUFFLE = 1 << 16  # images: with `cache=True` (a split that fits in memory), a full shuffle


def _image(serialized: tf.Tensor, image_size: int) -> tf.Tensor:
    image = tf.io.parse_tensor(tf.reshape(serialized, []), tf.uint8)
    return tf.ensure_shape(image, [image_size, image_size, 3])


def image_dataset(
    dataset_factory: Callable,
    file_patterns: str | Sequence[str],
    image_size: int,
    batch_size: int,
    steps_per_epoch: int,
    epochs: int,
    shuffle_seed: int = 0,
    initial_epoch: int = 0,
    shuffle_buffer: int = 2048,
    cache: bool = False,
    element_shard: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """Shuffled batches of stored uint8 images `[B, T, T, 3]` (T = `image_size`) for SimSiam, for the
    epochs `initial_epoch` .. `epochs - 1` (labels are never read); `steps_per_epoch` full batches per
    epoch (partial batches are dropped: fixed shapes for XLA).

    Streaming (the default): each epoch reads the split again through TFXIO, files and records
    shuffled by the seed (`shuffle_seed`, epoch) through a `shuffle_buffer`-image buffer, so memory
    holds that buffer, not the split, and a run resumed at epoch e reads what an uninterrupted run reads
    in epoch e. `cache=True` decodes the split once into memory and shuffles it whole every epoch: the
    old behaviour, for data that fits in memory (memory grows with the split: docs/measurements.md).

    `element_shard` = (num_shards, index): keep every num_shards-th image of the files' stream, from
    the index-th (one worker's share, components/train/cluster.py; the same seed on every worker gives
    every worker the same stream); None: every image.
    """
    schema = examples.feature_schema({F.IMAGE_U8: "string"})

    def decoded(dataset: tf.data.Dataset) -> tf.data.Dataset:
        images = dataset.unbatch()
        if element_shard is not None:
            images = images.shard(*element_shard)
        return images.map(lambda f: _image(f[F.IMAGE_U8], image_size), num_parallel_calls=tf.data.AUTOTUNE)

    if cache:
        items = decoded(examples.read(dataset_factory, file_patterns, schema)).cache()

        def epoch(e: int) -> tf.data.Dataset:
            return items.shuffle(_CACHED_SHUFFLE, seed=_epoch_seed(shuffle_seed, e), reshuffle_each_iteration=False)
    else:

        def epoch(e: int) -> tf.data.Dataset:
            seed = _epoch_seed(shuffle_seed, e)
            return decoded(
                examples.read(dataset_factory, file_patterns, schema, shuffle_seed=seed, shuffle_buffer=shuffle_buffer)
            )

    return epoch_batches(epoch, batch_size, steps_per_epoch, initial_epoch, epochs).prefetch(tf.data.AUTOTUNE)


def _epoch_seed(shuffle_seed: int, epoch: int) -> int:
    return shuffle_seed * 1_000_003 + epoch


def epoch_batches(
    epoch: Callable[[int], tf.data.Dataset], batch_size: int, steps_per_epoch: int, initial_epoch: int, epochs: int
) -> tf.data.Dataset:
    """Batches for epochs `initial_epoch` .. `epochs - 1`: epoch e is `epoch(e)` (its items in the order of
    that epoch) cut into `steps_per_epoch` batches of `batch_size`.

    One dataset per epoch, each built with Python-int seeds, chained by `choose_from_datasets`:
    `shuffle` cannot take the epoch as a tensor seed (with a global seed of 0, TensorFlow's `get_seed`
    tests the seed pair with a Python `==`, which a symbolic tensor cannot answer). Each epoch is
    chosen once more after its last batch: that pull finds it exhausted, which releases its iterator
    and shuffle buffer (otherwise every finished epoch keeps its buffer until training ends).
    """
    per_epoch = [
        epoch(e).batch(batch_size, drop_remainder=True).take(steps_per_epoch) for e in range(initial_epoch, epochs)
    ]
    if not per_epoch:
        raise ValueError(f"no epoch left to train: initial_epoch={initial_epoch} >= epochs={epochs}")
    order = tf.data.Dataset.range(len(per_epoch)).flat_map(
        lambda i: tf.data.Dataset.from_tensors(i).repeat(steps_per_epoch + 1)
    )
    return tf.data.Dataset.choose_from_datasets(per_epoch, order, stop_on_empty_dataset=False)


class SplitSample(NamedTuple):
    """The hash sample of one split (components/examples.py): stored uint8 images `[M, T, T, 3]`, int64
    labels `[M]` (-1: unlabelled), and the split's counts (all its examples, not only the sample's)."""

    images: np.ndarray
    labels: np.ndarray
    examples: int  # examples in the split
    labelled: int  # of which labelled


def sample_split(
    dataset_factory: Callable, file_patterns: str | Sequence[str], size: int, image_size: int
) -> SplitSample:
    """At most `size` stored images of a split, chosen by the hash of their ids, in one streaming pass."""
    _, images, labels, counts = examples.sample_split(dataset_factory, file_patterns, size)
    stacked = np.stack(images) if images else np.zeros((0, image_size, image_size, 3), np.uint8)
    return SplitSample(stacked, labels, counts["examples"], counts["labelled"])


def pixel_stats(
    dataset_factory: Callable, file_patterns: str | Sequence[str], tft_output: tft.TFTransformOutput
) -> tuple[list, list]:
    """The per-channel mean/std that the TFT analyzers computed (identical on every example)."""
    first = next(
        iter(examples.read(dataset_factory, file_patterns, tft_output.transformed_metadata.schema, batch_size=1))
    )
    mean, std = (np.asarray(first[k]).reshape(-1, 3)[0] for k in (F.PIXEL_MEAN, F.PIXEL_STD))
    return mean.tolist(), std.tolist()
