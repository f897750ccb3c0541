"""The Transform step: decode each image once, resize it, and measure pixel statistics.

Each photo is stored WHOLE as a uint8 square of `stored_size` px (1 byte per channel: 15.5 KB at
72 px), larger than the training size, so the training crops (RandomResizedCrop inside the compiled
step) sample the entire photo at real resolution, and the evaluation view
(`models.augment.eval_view`) sees the entire photo too. Whole, not centre-cropped: a centre square
drops a quarter of a typical 4:3 Flowers photo, often the flower. Squashing a 4:3 photo to a square
changes its aspect by 4/3, which lies inside RandomResizedCrop's own aspect range (3/4, 4/3), so the
encoder is trained to be indifferent to it. Serving runs this same graph on raw bytes through
`TFTransformOutput.transform_features_layer()`. The per-channel mean/std come from TFT analyzers
and are emitted as features so the trainer can bake them into the encoder's normalisation layer.

Decoding is `components.image_decode.decode_image`, the only decode of the graphs: EXIF orientation
applied, transparency composited onto white, the size limits (`serving.images.ImageLimits`) checked
from the header first. Serving inherits all three with this graph.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from components import features as F
from components.image_decode import decode_image
from serving.images import ImageLimits


def decode_and_resize(encoded: tf.Tensor, image_size: int, limits: ImageLimits = ImageLimits()) -> tf.Tensor:
    """JPEG/PNG bytes -> uint8 [T, T, 3] (T = `image_size`, the stored size): the photo as displayed
    (`decode_image`), whole, resized to a square, bilinear with antialiasing (Pillow's
    `resize(BILINEAR)` does the same). Fails (InvalidArgumentError) on bytes `decode_image` refuses."""
    image = decode_image(encoded, limits)
    image = tf.image.resize(image, [image_size, image_size], method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def decode_batch(encoded: tf.Tensor, image_size: int, limits: ImageLimits = ImageLimits()) -> tf.Tensor:
    """A batch of encoded images (shape [B] or [B, 1]) -> uint8 [B, S, S, 3]."""
    encoded = tf.reshape(encoded, [-1])
    return tf.map_fn(
        lambda x: decode_and_resize(x, image_size, limits),
        encoded,
        fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.uint8),
    )


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Raw tf.Example features -> stored uint8 image (serialized tensor), label, class name, image id, pixel stats.

    `custom_config["stored_size"]`: side of the stored square in px, required (the pipeline passes the
    recipe's `SimSiamConfig.stored_size`; ValueError without it); optional "min_side", "max_side",
    "max_pixels", "max_decoded_pixels" override `ImageLimits`' defaults (those of ingestion).
    """
    config = custom_config or {}
    if "stored_size" not in config:
        raise ValueError("the Transform's custom_config has no 'stored_size' (the recipe's stored image size in px)")
    stored_size = int(config["stored_size"])
    limits = ImageLimits.from_mapping(config)
    images = decode_batch(inputs[F.IMAGE], stored_size, limits)

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
        F.IMAGE_U8: tf.map_fn(tf.io.serialize_tensor, images, fn_output_signature=tf.string),
        F.LABEL: tf.reshape(inputs[F.LABEL], [-1]),
        F.CLASS_NAME: tf.reshape(inputs[F.CLASS_NAME], [-1]),
        F.IMAGE_ID: tf.reshape(inputs[F.IMAGE_ID], [-1]),  # the readers' samples hash it (components/examples.py)
        F.PIXEL_MEAN: ones * mean,
        F.PIXEL_STD: ones * std,
    }
