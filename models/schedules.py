"""Learning-rate schedule: linear warm-up, then cosine decay (per step)."""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="simsiam")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """`base_lr * (step + 1) / warmup_steps` during warm-up, then cosine from base_lr to final_lr.

    Reaches final_lr exactly at `total_steps` (and stays there), so the rate never hits zero early.
    """

    def __init__(self, base_lr: float, total_steps: int, warmup_steps: int = 0, final_lr: float = 0.0):
        if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"need 0 <= warmup_steps <= total_steps, 1 <= total_steps: {warmup_steps}, {total_steps}")
        self.base_lr = float(base_lr)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.final_lr = float(final_lr)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = self.base_lr * (step + 1.0) / max(self.warmup_steps, 1)
        progress = ops.clip((step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 0.0, 1.0)
        cosine = self.final_lr + 0.5 * (self.base_lr - self.final_lr) * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < self.warmup_steps, warm, cosine)

    def get_config(self):
        return {
            "base_lr": self.base_lr, "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps, "final_lr": self.final_lr,
        }
