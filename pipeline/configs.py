"""One configuration tree for a run, validated in one place, and the run profiles as data.

    RunConfig                    what `create_pipeline` needs; JSON-serialisable (`to_dict`)
    ├── simsiam: SimSiamConfig   the SimSiam recipe (models/config.py): backbone, sizes, optimiser,
    │                            augmentation strength; the Trainer receives exactly this
    └── pipeline-level settings  probe, monitor cadence, split, gates, precision

`config_from_args` turns a profile plus command-line overrides into a RunConfig for both
`simsiam-tfx run` and `simsiam-tfx compile-kubeflow`, and `input_from_args` the input options they
share with `ingest` into an ImageInput: the command-line side lives here, not in components/.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from components.examples import DEFAULT_SAMPLE_SIZE
from components.ingest.inputs import ImageInput
from components.ingest.splits import DEFAULT_EVAL_PERCENT, DEFAULT_MAX_REJECTED_FRACTION
from models.baselines import GATE_AGAINST
from models.config import PRECISIONS, SimSiamConfig


@dataclass(frozen=True)
class RunConfig:
    """Everything a run can be told. Raises ValueError on a bad value (checked when constructed)."""

    profile: str
    simsiam: SimSiamConfig = field(default_factory=SimSiamConfig)
    probe_epochs: int = 1000  # full-batch epochs (iterations) of the logistic-regression probe
    knn_every: int = 5  # epochs between kNN monitor evaluations
    eval_percent: int = DEFAULT_EVAL_PERCENT
    max_rejected_fraction: float = DEFAULT_MAX_REJECTED_FRACTION
    # The labelled gate: the Evaluator's absolute floor (off by default: 0.5 is chance for 2 classes and
    # out of reach for 30) and no regression against the last pushed model; then the BaselineGate
    # (components/evaluate/baseline_gate.py): the linear probe and kNN must reach the untrained baseline
    # named by gate_against ("strongest", "random_init" or "none") plus gate_margin.
    accuracy_floor: float = 0.0
    gate_against: str = "strongest"
    gate_margin: float = 0.0
    # collapse_std below this fails the SimSiam Trainer: it lies between a healthy run, which stays near 1
    # (docs/measurements.md gives the cpu run's), and a collapse, which heads for 0 (without stop-gradient
    # it falls under half its start within 160 steps: tests/models/test_models_training.py).
    collapse_threshold: float = 0.5
    precision: str = "auto"  # auto: bf16 with a GPU, float32 on a CPU; bf16/fp16/fp32 as given
    # The SimSiam Trainer's checkpoints may take at most this share of its training time
    # (components/train/checkpoint.py); 1.0 saves after every epoch.
    checkpoint_io_fraction: float = 0.05
    # The label-free gate (runs without any label; components/evaluate/label_free.py): the held-out
    # embeddings' encoder_spread (the SimSiam collapse monitor on the encoder's output, not the projector's
    # collapse_std above) must reach min_encoder_spread, and their effective rank (RankMe)
    # min_rank_ratio times the random-init encoder's, and not fall below the last blessed model's.
    # Why these defaults: components/evaluate/label_free.py; the measured ratios: docs/CONTRACTS.md.
    min_encoder_spread: float = 0.1
    min_rank_ratio: float = 1.5
    # Memory that does not grow with the data (components/examples.py, components/train/data.py): every
    # step that looks at embeddings (the kNN monitor and the baselines, the probe's fit, the label-free
    # gate, the report, the index's thumbnails) uses a fixed sample of at most sample_size images per
    # split, chosen by a hash of the image id; the SimSiam Trainer streams its split through a
    # shuffle_buffer-image buffer, or, with cache_images, decodes it once into memory (small data only).
    sample_size: int = DEFAULT_SAMPLE_SIZE
    shuffle_buffer: int = 2048
    cache_images: bool = False
    keep_checkpoints: bool = False  # keep the SimSiam Trainer's resume checkpoints after a successful export

    def __post_init__(self) -> None:
        if self.probe_epochs < 1 or self.knn_every < 1:
            raise ValueError(f"probe_epochs and knn_every must be >= 1, got {self.probe_epochs}, {self.knn_every}")
        if not 0 < self.eval_percent < 100:
            raise ValueError(f"eval_percent must lie in 1..99, got {self.eval_percent}")
        if not 0 <= self.max_rejected_fraction <= 1 or self.accuracy_floor < 0:
            raise ValueError(
                "max_rejected_fraction must lie in [0, 1] and accuracy_floor be >= 0 (a floor above 1 blesses nothing)"
            )
        if not 0 < self.checkpoint_io_fraction <= 1:
            raise ValueError(f"checkpoint_io_fraction must lie in (0, 1], got {self.checkpoint_io_fraction}")
        if self.min_encoder_spread < 0 or self.min_rank_ratio < 0:
            raise ValueError(
                "min_encoder_spread and min_rank_ratio must be >= 0, got "
                f"{self.min_encoder_spread}, {self.min_rank_ratio}"
            )
        if self.gate_against not in GATE_AGAINST or self.gate_margin < 0:
            raise ValueError(
                f"gate_against must be one of {GATE_AGAINST} and gate_margin >= 0, got "
                f"{self.gate_against!r}, {self.gate_margin}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {self.precision!r}")
        if self.sample_size < 1 or self.shuffle_buffer < 1:
            raise ValueError(
                f"sample_size and shuffle_buffer must be >= 1, got {self.sample_size}, {self.shuffle_buffer}"
            )

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with `changes` applied (None values ignored); SimSiamConfig fields go into `simsiam`."""
        changes = {k: v for k, v in changes.items() if v is not None}
        recipe_fields = {f.name for f in dataclasses.fields(SimSiamConfig)}
        recipe = {k: changes.pop(k) for k in list(changes) if k in recipe_fields}
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown run settings: {sorted(unknown)}")
        if recipe.get("image_size", self.simsiam.image_size) != self.simsiam.image_size:
            # a new training size: the sizes tied to it follow it unless given too
            recipe.setdefault("stored_size", None)
            recipe.setdefault("eval_size", None)
        if "epochs" in recipe and "warmup_epochs" not in recipe and self.simsiam.warmup_epochs > recipe["epochs"]:
            recipe["warmup_epochs"] = recipe["epochs"] // 10  # a profile's warm-up longer than the run: a tenth
        simsiam = dataclasses.replace(self.simsiam, **recipe) if recipe else self.simsiam
        return dataclasses.replace(self, simsiam=simsiam, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Profiles are data: each a set of RunConfig / SimSiamConfig values over the defaults.
PROFILES: dict[str, dict[str, Any]] = {
    # A few minutes on a 2-core CPU: proves the plumbing, not the quality (used by tests).
    "smoke": dict(
        image_size=32,
        eval_size=40,  # the whole stored photo (FixRes, --eval-size): the tests run that path through every step
        batch_size=16,
        epochs=2,
        probe_epochs=200,
        warmup_epochs=0,
        width=0.25,
        knn_every=1,
        gate_against="none",
        collapse_threshold=0.0,
    ),
    # All 3,119 Flowers images on a 2-core CPU, the recipe the "A CPU recipe" study chose
    # (docs/measurements.md): ResNet-18 at half width (3x the steps per minute of the full one), bf16
    # where the CPU has it, photos stored at 96 px and cropped to 64, batch 64 (more steps), weaker
    # colour jitter, no grayscale; 150 epochs. 200 epochs (what the SimSiam Trainer's 45-minute budget
    # holds) and evaluating on the whole 96 px photo (`--eval-size 96`) scored the same within noise
    # for a third more time (docs/quality.md, which gives each run's time and scores).
    "cpu": dict(
        image_size=64,
        stored_size=96,
        width=0.5,
        batch_size=64,
        epochs=150,
        warmup_epochs=5,
        jitter_strength=0.5,
        grayscale_prob=0.0,
        precision="bf16",
        knn_every=10,
    ),
    # The small-data GPU recipe (docs/recipe.md): batch 128, lr 0.06, wd 5e-4, many epochs, bf16.
    "gpu": dict(image_size=128, batch_size=128, epochs=400, knn_every=20, warmup_epochs=10),
}


def profile_config(name: str, **overrides: Any) -> RunConfig:
    """The RunConfig of profile `name` with `overrides` (None values ignored). Raises KeyError/ValueError."""
    if name not in PROFILES:
        raise KeyError(f"unknown profile {name!r}; expected one of {sorted(PROFILES)}")
    return RunConfig(profile=name).replace(**PROFILES[name]).replace(**overrides)


def add_recipe_arguments(group: argparse._ActionsContainer) -> None:
    """The recipe flags that `run` and `compile-kubeflow` share (each overrides the profile's value)."""
    group.add_argument(
        "--epochs",
        type=int,
        help="SimSiam pre-training epochs (a profile's learning-rate warm-up longer than that becomes a tenth of them)",
    )
    group.add_argument("--probe-epochs", type=int, help="linear-probe epochs (full-batch solver iterations)")
    group.add_argument(
        "--image-size", type=int, help="training crop size in px (stored 9/8 larger; evaluated at this size too)"
    )
    group.add_argument(
        "--eval-size",
        type=int,
        help="size in px of the whole-photo view that the monitor, the probe, the index and the served model "
        "see, at most the stored size (default: --image-size; the cpu profile's photos are stored at 96 px: "
        "docs/quality.md measures --eval-size 96)",
    )
    group.add_argument("--backbone", choices=["resnet18", "resnet50"])
    group.add_argument("--batch-size", type=int)
    group.add_argument(
        "--accuracy-floor",
        type=float,
        help="with labels, the Evaluator blesses only at or above this eval accuracy (default: 0, off; "
        "the gate below is the one that matters)",
    )
    group.add_argument(
        "--gate-against",
        choices=GATE_AGAINST,
        help="with labels, push only when the linear probe and kNN reach the strongest untrained "
        "baseline (random init, random filters, colour histograms), only random init, or none "
        "(default: strongest; smoke profile: none)",
    )
    group.add_argument("--gate-margin", type=float, help="how far above that baseline they must be (default: 0)")
    group.add_argument(
        "--min-rank-ratio",
        type=float,
        help="without labels, the label-free gate blesses only when the held-out embeddings' effective "
        "rank is at least this many times the random-init encoder's (default: 1.5)",
    )
    group.add_argument(
        "--eval-percent",
        type=int,
        help="share of the images held out for evaluation, 1-99, by a hash of the image id (default: 15)",
    )
    group.add_argument(
        "--precision",
        choices=tuple(PRECISIONS),
        help="SimSiam Trainer precision: auto = bf16 with a GPU, float32 on a CPU; bf16 also pays on "
        "CPUs with AVX512-BF16/AMX, which compute in bf16 natively (docs/measurements.md, 'Precision')",
    )
    group.add_argument(
        "--checkpoint-io-fraction",
        type=float,
        help="the largest share of SimSiam training time that checkpoints may take (default 0.05: "
        "save once more only when that keeps it; 1 saves after every epoch). A killed Trainer "
        "resumes from the latest checkpoint. Like every SimSiam Trainer setting, changing it on a "
        "rerun trains again: TFX reuses a step only when its settings are unchanged",
    )
    group.add_argument(
        "--sample-size",
        type=int,
        help=f"images per split in the fixed samples that the kNN monitor, the baselines, the probe's fit, "
        f"the label-free gate, the report and the index's thumbnails use (default {DEFAULT_SAMPLE_SIZE}: "
        "memory stays flat however large the data)",
    )
    group.add_argument(
        "--shuffle-buffer",
        type=int,
        help="images in the SimSiam Trainer's streaming shuffle buffer (default 2048)",
    )
    group.add_argument(
        "--cache-images",
        action="store_const",
        const=True,
        help="decode the train split once into memory instead of streaming it every epoch: only for data "
        "that fits in memory (memory grows with the data)",
    )
    add_checkpoint_argument(group)


def add_checkpoint_argument(group: argparse._ActionsContainer) -> None:
    """`--keep-checkpoints`, shared by `run` and `compile-kubeflow` (in `add_recipe_arguments`)."""
    group.add_argument(
        "--keep-checkpoints",
        action="store_const",
        const=True,
        help="keep the SimSiam Trainer's resume checkpoints (OUT/pipeline_root/checkpoints) after it exported "
        "its model; by default they are deleted then, since a finished step is reused from the cache "
        "(a killed run still resumes from them). Set it on the first run: changing it later trains again",
    )


def config_from_args(args: argparse.Namespace, profile: str) -> RunConfig:
    """`profile` with the flags of `add_recipe_arguments` applied."""
    return profile_config(
        profile,
        epochs=args.epochs,
        probe_epochs=args.probe_epochs,
        image_size=args.image_size,
        eval_size=args.eval_size,
        backbone=args.backbone,
        batch_size=args.batch_size,
        accuracy_floor=args.accuracy_floor,
        gate_against=args.gate_against,
        gate_margin=args.gate_margin,
        eval_percent=args.eval_percent,
        min_rank_ratio=args.min_rank_ratio,
        precision=args.precision,
        checkpoint_io_fraction=args.checkpoint_io_fraction,
        sample_size=args.sample_size,
        shuffle_buffer=args.shuffle_buffer,
        cache_images=args.cache_images,
        keep_checkpoints=args.keep_checkpoints,
    )


def default_profile() -> str:
    """`gpu` when TensorFlow sees a GPU, else `cpu`."""
    import tensorflow as tf

    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def add_workers_argument(parser: argparse.ArgumentParser) -> None:
    """`--workers`, the local Beam steps' worker processes, shared by `run` and `ingest`
    (pipeline/local_runner.beam_workers)."""
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="Beam worker processes of the Beam steps (default: 1, Beam in this process: on 2 cores it was "
        "the faster at every size measured, up to the 3,119 Flowers photos; docs/measurements.md). More "
        "may pay on many cores. Changing it alone reuses every cached step",
    )


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """The input options `ingest`, `run` and `compile-kubeflow` share (argparse)."""
    group = parser.add_argument_group("input (one kind; --data-dir and --unlabeled-dir may go together)")
    group.add_argument(
        "--data-dir", help="a folder of class sub-folders of JPEG/PNG images (flower_photos layout): labelled images"
    )
    group.add_argument(
        "--unlabeled-dir",
        help="a folder of JPEG/PNG images without labels, read at any depth "
        "(its sub-folders are never classes); with --data-dir, extra images "
        "SimSiam also trains on",
    )
    group.add_argument(
        "--examples",
        metavar="GLOB",
        help="TFRecord files (GZIP or not) of tf.Examples holding encoded "
        "JPEG/PNG images, e.g. 'data/train-*.tfrecord.gz'",
    )
    group.add_argument(
        "--image-key",
        default="image",
        help="with --examples: the bytes feature holding the encoded image (default: %(default)s)",
    )
    group.add_argument(
        "--label-key", help="with --examples: the int64 or bytes label feature; leave it out for unlabelled records"
    )
    group.add_argument(
        "--tfds",
        metavar="NAME",
        help="a TFDS image-classification dataset, e.g. tf_flowers (downloaded on first use: needs internet)",
    )
    group.add_argument("--tfds-data-dir", help="where TFDS keeps its data (default: ~/tensorflow_datasets)")


def input_from_args(args: argparse.Namespace) -> ImageInput:
    """The ImageInput of `add_input_arguments`' options; raises ValueError on a bad combination."""
    return ImageInput(
        data_dir=args.data_dir,
        unlabeled_dir=args.unlabeled_dir,
        examples=args.examples,
        image_key=args.image_key,
        label_key=args.label_key,
        tfds_name=args.tfds,
        tfds_data_dir=args.tfds_data_dir,
    )
