"""Training recipe (simsiam.md) as a dataclass, and the mixed-precision switch."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import keras

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class SimSiamConfig:
    """Defaults follow the recipe that worked on Flowers: batch 128, lr 0.06 (no batch scaling), wd 5e-4."""

    backbone: str = "resnet18"
    image_size: int = 64
    small_stem: bool | None = None  # None: the 3x3 stem for images under 64 px (see backbones.py)
    width: float = 1.0  # channel multiplier of the backbone (tests use a fraction)
    batch_size: int = 128
    epochs: int = 400
    warmup_epochs: int = 10
    base_lr: float = 0.06
    final_lr: float = 0.0
    weight_decay: float = 5e-4  # PyTorch-style L2 (added to the gradient), on every variable
    momentum: float = 0.9
    fix_pred_lr: bool = True  # the predictor keeps base_lr while the rest follows the schedule
    proj_dim: int = 2048
    proj_hidden_dim: int = 2048
    pred_hidden_dim: int = 512
    stop_gradient: bool = True
    knn_every_n_epochs: int = 10
    knn_k: int = 20
    seed: int = 0

    def __post_init__(self):
        if self.image_size < 8 or self.batch_size < 2 or self.epochs < 1:
            raise ValueError(f"need image_size >= 8, batch_size >= 2, epochs >= 1: {self}")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"warmup_epochs must lie in [0, epochs], got {self.warmup_epochs}")
        if self.base_lr <= 0 or self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ValueError(f"bad optimiser settings: {self}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SimSiamConfig:
        """Strict: unknown keys raise, so a typo in a pipeline's custom_config does not pass silently."""
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown SimSiamConfig fields: {sorted(unknown)}")
        return cls(**values)


def configure_precision(device_has_gpu: bool, policy: str = "mixed_bfloat16") -> str:
    """Set Keras' global dtype policy: `policy` with a GPU, float32 without. Call before building.

    Losses and metrics stay float32: the model casts its outputs before the loss.
    """
    if policy not in ("mixed_bfloat16", "mixed_float16", "float32"):
        raise ValueError(f"unsupported policy {policy!r}")
    chosen = policy if device_has_gpu else "float32"
    keras.mixed_precision.set_global_policy(chosen)
    return chosen
