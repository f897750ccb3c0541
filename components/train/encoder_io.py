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


def load_encoder(model_dir: str) -> tuple[keras.Model, dict[str, Any]]:
    from models.backbones import build_backbone
    from models.encoder import build_encoder

    with open(os.path.join(model_dir, ENCODER_RECIPE)) as f:
        recipe = json.load(f)
    backbone = build_backbone(
        recipe["backbone"], recipe["image_size"], small_stem=recipe.get("small_stem"), width=recipe.get("width", 1.0)
    )
    encoder = build_encoder(backbone, recipe["image_size"], mean=recipe["mean"], std=recipe["std"])
    encoder.load_weights(os.path.join(model_dir, ENCODER_WEIGHTS))
    return encoder, recipe
