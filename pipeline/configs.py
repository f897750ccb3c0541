"""Run profiles: everything a run can be told, with one set of defaults per machine size."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RunConfig:
    """What `simsiam-tfx run` passes to `create_pipeline` (all JSON-serialisable)."""

    profile: str
    backbone: str = "resnet18"
    image_size: int = 64
    stored_size: int | None = None  # None: SimSiamConfig's default (image_size * 9/8)
    batch_size: int = 128
    epochs: int = 30
    probe_epochs: int = 1000  # full-batch epochs (iterations) of the logistic-regression probe
    base_lr: float = 0.06
    weight_decay: float = 5e-4
    warmup_epochs: int = 2
    jitter_strength: float = 1.0
    grayscale_prob: float = 0.2
    backbone_width: float = 1.0  # channel multiplier: < 1 only for the smoke profile
    knn_every: int = 5  # epochs between kNN monitor evaluations
    eval_percent: int = 15
    max_rejected_fraction: float = 0.1
    accuracy_floor: float = 0.5  # Evaluator blesses only above this eval accuracy
    # collapse_std below this fails the SimSiam Trainer: healthy runs stay near 1 (0.97 in the cpu run);
    # without stop-gradient it falls to ~0.3 within 160 steps (tests/test_models_training.py).
    collapse_threshold: float = 0.5
    precision: str = "auto"  # auto: bf16/fp16 with a GPU, float32 on CPU
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def replace(self, **changes) -> RunConfig:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def simsiam_config(self) -> dict:
        """The keyword arguments of `models.config.SimSiamConfig` for this run."""
        return {
            "backbone": self.backbone,
            "image_size": self.image_size,
            "stored_size": self.stored_size,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "base_lr": self.base_lr,
            "weight_decay": self.weight_decay,
            "warmup_epochs": self.warmup_epochs,
            "width": self.backbone_width,
            "jitter_strength": self.jitter_strength,
            "grayscale_prob": self.grayscale_prob,
            "seed": self.seed,
        }


PROFILES: dict[str, RunConfig] = {
    # A few minutes on a 2-core CPU: proves the plumbing, not the quality (used by tests).
    "smoke": RunConfig(
        profile="smoke", image_size=32, batch_size=16, epochs=2, probe_epochs=200, warmup_epochs=0,
        backbone_width=0.25, knn_every=1, accuracy_floor=0.0, collapse_threshold=0.0,
    ),
    # All 3,119 images on a 2-core CPU in well under an hour.
    "cpu": RunConfig(profile="cpu", image_size=64, batch_size=128, epochs=25, knn_every=5, warmup_epochs=2),
    # The recipe of shared/design/simsiam.md: small batch, many steps, bf16 on a GPU.
    "gpu": RunConfig(profile="gpu", image_size=128, batch_size=128, epochs=400, knn_every=20, warmup_epochs=10,
                     accuracy_floor=0.7),
}


def default_profile() -> str:
    """`gpu` when TensorFlow sees a GPU, else `cpu`."""
    import tensorflow as tf

    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
