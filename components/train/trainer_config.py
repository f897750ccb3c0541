"""What the SimSiam Trainer's `run_fn` is told, across TFX's `custom_config` boundary.

TFX hands a Trainer its `custom_config` as a JSON dict (exec property), so the typed configuration
tree (pipeline/configs.py: RunConfig -> SimSiamConfig) would end at the Trainer if `run_fn` read
loose keys with defaults of its own. Instead the pipeline builds one `SimSiamTrainerConfig` from the
RunConfig, writes it with `to_custom_config`, and `run_fn` reads it back with the strict
`from_custom_config`: a key missing or unknown fails the step at once with its name, a value out of
range with the reason, and no default is repeated here. Nothing in this module imports TensorFlow.

On Vertex AI, TFX's Google Cloud Trainer adds its own `ai_platform_*` keys to the same dict (the
job's settings, `tfx.extensions.google_cloud_ai_platform.trainer.executor`) and the job's `run_fn`
receives them too; they are TFX's, so they are set aside, not rejected.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from models.config import PRECISIONS, SimSiamConfig

TFX_CLOUD_KEY_PREFIX = "ai_platform_"  # the keys of TFX's Google Cloud AI Platform / Vertex AI Trainer


@dataclass(frozen=True)
class SimSiamTrainerConfig:
    """The SimSiam Trainer's settings. Raises ValueError on a bad value (checked when constructed)."""

    simsiam: SimSiamConfig  # the recipe: model, optimiser, augmentation
    checkpoint_root: str  # folder of the resumable checkpoints, outside the per-execution output
    knn_every: int  # epochs between kNN monitor evaluations
    collapse_threshold: float  # the Trainer fails when the final collapse_std is below this
    precision: str  # a key of models.config.PRECISIONS
    checkpoint_io_fraction: float  # the largest share of training time that checkpoints may take
    export_serving_model: bool  # no labels: also write the embedding-only serving model the Pusher serves
    sample_size: int  # images of each split in the kNN monitor's and the baselines' fixed sample
    shuffle_buffer: int  # images in the streaming shuffle buffer (components/train/data.py)
    cache_images: bool  # decode the train split once into memory (small data only) instead of streaming
    devices: tuple[str, ...] = ()  # devices to train on; empty: every GPU, else the CPU
    # Keep the resume checkpoints once the model is exported (they are only for resuming a killed run).
    keep_checkpoints: bool = False

    def __post_init__(self) -> None:
        if self.knn_every < 1:
            raise ValueError(f"knn_every must be >= 1, got {self.knn_every}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {self.precision!r}")
        if not 0 < self.checkpoint_io_fraction <= 1:
            raise ValueError(f"checkpoint_io_fraction must lie in (0, 1], got {self.checkpoint_io_fraction}")
        if self.sample_size < 1 or self.shuffle_buffer < 1:
            raise ValueError(
                f"sample_size and shuffle_buffer must be >= 1, got {self.sample_size}, {self.shuffle_buffer}"
            )
        if not self.checkpoint_root:
            raise ValueError("checkpoint_root must name a folder")

    def to_custom_config(self) -> dict[str, Any]:
        """The JSON-serialisable dict a TFX Trainer's `custom_config` carries."""
        return {**dataclasses.asdict(self), "simsiam": self.simsiam.to_dict(), "devices": list(self.devices)}

    @classmethod
    def from_custom_config(cls, custom: dict[str, Any] | None) -> SimSiamTrainerConfig:
        """Strict inverse of `to_custom_config`: raises ValueError naming missing or unknown keys."""
        custom = {k: v for k, v in (custom or {}).items() if not k.startswith(TFX_CLOUD_KEY_PREFIX)}
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
        unknown, missing = set(custom) - names, required - set(custom)
        if unknown or missing:
            raise ValueError(
                f"SimSiam Trainer custom_config: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}"
            )
        custom["simsiam"] = SimSiamConfig.from_dict(custom["simsiam"])
        custom["devices"] = tuple(custom.get("devices") or ())
        return cls(**custom)
