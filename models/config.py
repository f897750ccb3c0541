"""The SimSiam training recipe as one validated dataclass, and the mixed-precision switch."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class SimSiamConfig:
    """Defaults follow the recipe that worked on Flowers: batch 128, lr 0.06 (no batch scaling), wd 5e-4."""

    backbone: str = "resnet18"
    image_size: int = 64  # training view size (px): the random-resized crops
    # Size (px) of the stored square image that the crops are cut from: the whole photo, larger than
    # image_size so a small crop keeps real resolution. None: image_size * 9/8 (the reference run
    # stored 144 px for 128 px training), rounded to a multiple of 8.
    stored_size: int | None = None
    # Size (px) of the evaluation view: the whole stored photo, resampled, as the kNN monitor, the
    # baselines, the probe, the index and the served model see it. None: image_size. Larger than
    # image_size undoes the train-test resolution discrepancy: a random-resized crop shows an object
    # larger than the whole-photo view at the same size does, so the whole photo at a larger size
    # matches the apparent object size the encoder learned (FixRes: Touvron et al., "Fixing the
    # train-test resolution discrepancy", NeurIPS 2019, Sec. 3). At most stored_size.
    eval_size: int | None = None
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
    # Augmentation strength. jitter_strength scales the paper's colour jitter (brightness, contrast,
    # saturation 0.4, hue 0.1): 1.0 is the paper's, 0.5 half as strong. Flowers are told apart by
    # colour, so weaker colour invariance can help there (docs/measurements.md, "A CPU recipe").
    jitter_strength: float = 1.0
    grayscale_prob: float = 0.2
    # RandomResizedCrop's smallest crop, as a share of the photo's area (the paper's 0.2).
    crop_min_scale: float = 0.2
    seed: int = 0

    def __post_init__(self):
        if self.stored_size is None:
            object.__setattr__(self, "stored_size", default_stored_size(self.image_size))
        if self.eval_size is None:
            object.__setattr__(self, "eval_size", self.image_size)
        if self.stored_size < self.image_size:
            raise ValueError(f"stored_size ({self.stored_size}) must be >= image_size ({self.image_size})")
        if not 8 <= self.eval_size <= self.stored_size:
            raise ValueError(f"eval_size ({self.eval_size}) must lie in 8..stored_size ({self.stored_size})")
        if self.jitter_strength < 0 or not 0 <= self.grayscale_prob <= 1 or not 0 < self.crop_min_scale <= 1:
            raise ValueError(f"need jitter_strength >= 0, grayscale_prob in [0, 1], crop_min_scale in (0, 1]: {self}")
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


def default_stored_size(image_size: int) -> int:
    """image_size * 9/8 rounded up to a multiple of 8 (64 -> 72, 128 -> 144)."""
    return math.ceil(image_size * 9 / 64) * 8


# The one precision vocabulary of every command, config and custom_config: short name -> Keras dtype
# policy. "auto" is mixed_bfloat16 with a GPU and float32 without.
PRECISIONS = {"auto": None, "bf16": "mixed_bfloat16", "fp16": "mixed_float16", "fp32": "float32"}


def configure_precision(device_has_gpu: bool, precision: str = "auto") -> str:
    """Set Keras' global dtype policy for `precision` (a key of PRECISIONS) and return the policy's
    name. Call before building the model.

    `auto`: mixed_bfloat16 with a GPU, float32 without. An explicit precision is applied as given, on a
    CPU too (a CPU with AVX512-BF16 or AMX runs bfloat16 matmuls natively; docs/quality.md says what it
    gains here). Losses and metrics stay float32: the model casts its outputs before the loss. Raises
    ValueError for any other name.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unsupported precision {precision!r}; expected one of {tuple(PRECISIONS)}")
    import keras  # here, not at module level: the CLI reads configs before TensorFlow loads

    chosen = PRECISIONS[precision] or ("mixed_bfloat16" if device_has_gpu else "float32")
    keras.mixed_precision.set_global_policy(chosen)
    return chosen
