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
