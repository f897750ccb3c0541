"""The Transform step: decode each image once, resize it, and measure pixel statistics.

Training reads the stored uint8 images (1 byte per channel: 12 KB per image at 64 px)
and augments them inside the compiled step; serving runs this same graph on raw
bytes through `TFTransformOutput.transform_features_layer()`. The per-channel
mean/std come from TFT analyzers and are emitted as features so the trainer can
bake them into the encoder's normalisation layer.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

IMAGE_KEY = "image"
LABEL_KEY = "label"
CLASS_NAME_KEY = "class_name"
IMAGE_U8_KEY = "image_u8"
PIXEL_MEAN_KEY = "pixel_mean"
PIXEL_STD_KEY = "pixel_std"
DEFAULT_IMAGE_SIZE = 64


def decode_and_resize(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """JPEG/PNG bytes -> uint8 [S, S, 3]: shorter side to S (antialiased), then a centre crop."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.cast(image_size, tf.float32) / tf.reduce_min(shape)
    new_hw = tf.maximum(tf.cast(tf.math.ceil(shape * scale), tf.int32), image_size)
    image = tf.image.resize(image, new_hw, method="bilinear", antialias=True)
    image = tf.image.resize_with_crop_or_pad(image, image_size, image_size)
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def decode_batch(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """A batch of encoded images (shape [B] or [B, 1]) -> uint8 [B, S, S, 3]."""
    encoded = tf.reshape(encoded, [-1])
    return tf.map_fn(
        lambda x: decode_and_resize(x, image_size),
        encoded,
        fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.uint8),
    )


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any] | None = None) -> dict[str, Any]:
    image_size = int((custom_config or {}).get("image_size", DEFAULT_IMAGE_SIZE))
    images = decode_batch(inputs[IMAGE_KEY], image_size)

    # Every image has the same pixel count, so the mean of per-image channel means
    # (and of means of squares) is the per-channel mean over all pixels.
    pixels = tf.cast(images, tf.float32) / 255.0
    per_image_mean = tf.reduce_mean(pixels, axis=[1, 2])
    per_image_mean_sq = tf.reduce_mean(tf.square(pixels), axis=[1, 2])
    mean = tft.mean(per_image_mean, reduce_instance_dims=False, name="pixel_mean")
    mean_sq = tft.mean(per_image_mean_sq, reduce_instance_dims=False, name="pixel_mean_square")
    std = tf.sqrt(tf.maximum(mean_sq - tf.square(mean), 1e-12))
    ones = tf.ones_like(pixels[:, 0, 0, :])

    return {
        IMAGE_U8_KEY: tf.map_fn(tf.io.serialize_tensor, images, fn_output_signature=tf.string),
        LABEL_KEY: tf.reshape(inputs[LABEL_KEY], [-1]),
        CLASS_NAME_KEY: tf.reshape(inputs[CLASS_NAME_KEY], [-1]),
        PIXEL_MEAN_KEY: ones * mean,
        PIXEL_STD_KEY: ones * std,
    }
