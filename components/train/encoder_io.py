"""Saving and loading the trained encoder between the SimSiam and the probe Trainers.

Weights plus a small JSON recipe, rebuilt with `models.encoder.build_encoder`: no
custom-object registry to keep in sync, and the file loads on any Keras backend.
"""

from __future__ import annotations

import json
import os
from typing import Any

import keras

ENCODER_WEIGHTS = "encoder.weights.h5"
ENCODER_RECIPE = "encoder.json"


def save_encoder(encoder: keras.Model, model_dir: str, recipe: dict[str, Any]) -> None:
    os.makedirs(model_dir, exist_ok=True)
    encoder.save_weights(os.path.join(model_dir, ENCODER_WEIGHTS))
    with open(os.path.join(model_dir, ENCODER_RECIPE), "w") as f:
        json.dump(recipe, f, indent=2)


def load_encoder(model_dir: str, image_size: int | None = None) -> tuple[keras.Model, dict[str, Any]]:
    """The saved encoder and its recipe. `image_size` rebuilds it for views of another size (the
    backbone is fully convolutional up to its global pooling, so the weights fit any size); the stem
    stays the one it was trained with. Default: the recipe's evaluation view size (`eval_size`; its
    training size in recipes written before there was one), the size everything downstream embeds at."""
    from models.backbones import build_backbone, resolve_small_stem
    from models.encoder import build_encoder

    with open(os.path.join(model_dir, ENCODER_RECIPE)) as f:
        recipe = json.load(f)
    size = image_size or recipe.get("eval_size") or recipe["image_size"]
    small_stem = resolve_small_stem(recipe["image_size"], recipe.get("small_stem"))
    backbone = build_backbone(recipe["backbone"], size, small_stem=small_stem, width=recipe.get("width", 1.0))
    encoder = build_encoder(backbone, size, mean=recipe["mean"], std=recipe["std"])
    encoder.load_weights(os.path.join(model_dir, ENCODER_WEIGHTS))
    return encoder, recipe
