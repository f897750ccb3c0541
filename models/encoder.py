"""The encoder used everywhere downstream: per-channel normalisation, then the backbone."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np


def build_encoder(backbone: keras.Model, image_size: int, mean: Sequence[float], std: Sequence[float]) -> keras.Model:
    """float images `[B, S, S, 3]` in [0, 1] -> backbone features; `mean`/`std` per channel in [0, 1] units."""
    mean, std = np.asarray(mean, "float32"), np.asarray(std, "float32")
    if mean.shape != (3,) or std.shape != (3,) or np.any(std <= 0):
        raise ValueError(f"mean and std need 3 values each, std > 0; got {mean}, {std}")
    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = keras.layers.Normalization(mean=mean, variance=np.square(std), name="normalize")(inputs)
    return keras.Model(inputs, backbone(x), name="encoder")


def encoder_at_size(encoder: keras.Model, size: int) -> keras.Model:
    """`encoder` (from `build_encoder`) for views of `size` px, sharing nothing but the weights' values.

    A functional model checks its input shape, so a 64 px encoder refuses a 96 px batch; the backbone
    is convolutional up to its global pooling, so the same weights fit any size. This rebuilds the
    model from its config with every input layer set to `size` (the stem and each layer's dtype policy
    kept) and copies the weights; `encoder` itself when it already takes `size`. Used for the
    evaluation view (`SimSiamConfig.eval_size`); raises ValueError for `size` < 8.
    """
    if size < 8:
        raise ValueError(f"size must be at least 8, got {size}")
    if encoder.input_shape[1:3] == (size, size):
        return encoder

    def resize_inputs(node):
        if isinstance(node, dict):
            if node.get("class_name") == "InputLayer":
                shape = node["config"]["batch_shape"]
                node["config"]["batch_shape"] = [shape[0], size, size, shape[-1]]
            for value in node.values():
                resize_inputs(value)
        elif isinstance(node, list):
            for value in node:
                resize_inputs(value)

    config = encoder.get_config()
    resize_inputs(config)
    resized = encoder.__class__.from_config(config)
    resized.set_weights(encoder.get_weights())
    return resized
