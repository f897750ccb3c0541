"""Quality benchmark: pretrain SimSiam on an image folder, then score frozen features.

    python -m benchmarks.quality --data-dir ../shared/flowers/flower_photos --backend jax \\
        --backbone resnet18 --image-size 64 --epochs 20 --batch-size 128

Images are decoded and resized once (numpy/Pillow, cached) to the stored size exactly as the
Transform stores them (the whole photo), split by the ExampleGen's hash rule, and trained with the
project's ``models/`` code (model, augmentations, loss, schedule). The eval split is scored on
``eval_view`` with the pipeline's linear probe (``models.evaluation.fit_linear_probe``) and
cosine kNN (k=20), for the trained encoder, for the same encoder at its random initialisation,
and for the cheap untrained features of ``models.baselines`` (random 3x3 filters, colour
histograms); ``gain_over_strongest`` is the trained score minus the best of those baselines.
With ``--backend jax`` nothing imports TensorFlow, so it runs on machines that only have JAX.

stdout: one JSON line per seed, then a summary line (mean/std). Progress goes to stderr.
Files: ``<output-dir>/quality-<backend>-<backbone>-<S>px-<E>ep.json`` and PNGs with the same stem.
Throughput: ``views_per_s`` is over the whole fit (compilation and kNN monitor included);
``views_per_s_after_epoch_1`` leaves out the first epoch (tracing/XLA compilation).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.image_data import FlowerData, load_images
from benchmarks.machine import describe_device

DEFAULT_OUTPUT_DIR = Path(__file__).resolve().parent / "results"
KNN_K = 20
METRICS = ("linear_probe", "knn")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True, type=Path, help="folder with one sub-folder per class")
    p.add_argument("--backend", choices=("tensorflow", "jax"), default="jax")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--image-size", type=int, default=64, help="training crop size in px")
    p.add_argument(
        "--eval-size",
        type=int,
        default=None,
        help="evaluation view size in px, <= the stored size (default: --image-size)",
    )
    p.add_argument(
        "--stored-size",
        type=int,
        default=None,
        help="stored image size in px, >= --image-size (default: image size x 9/8, as the pipeline)",
    )
    p.add_argument("--width", type=float, default=1.0, help="backbone channel multiplier (1.0: the full ResNet)")
    p.add_argument(
        "--jitter-strength",
        type=float,
        default=None,
        help="scales the paper's colour jitter (0.4, 0.4, 0.4, 0.1); default 1.0",
    )
    p.add_argument("--grayscale-prob", type=float, default=None, help="random grayscale probability (default 0.2)")
    p.add_argument(
        "--small-stem",
        choices=("auto", "on", "off"),
        default="auto",
        help="the ResNet's 3x3 stem without max-pool (auto: below 64 px); several times the compute",
    )
    p.add_argument(
        "--crop-min-scale",
        type=float,
        default=None,
        help="RandomResizedCrop's smallest crop as a share of the photo's area (default 0.2)",
    )
    p.add_argument("--proj-dim", type=int, default=None, help="projector output width (default 2048, the paper's)")
    p.add_argument("--proj-hidden-dim", type=int, default=None, help="projector hidden width (default 2048)")
    p.add_argument("--pred-hidden-dim", type=int, default=None, help="predictor bottleneck width (default 512)")
    p.add_argument("--tag", default="", help="appended to the result file names, to keep study runs apart")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seeds", type=int, default=1, help="number of seeds (0, 1, ...); each a full run")
    p.add_argument("--first-seed", type=int, default=0, help="seeds run from this one on (another seed in its own run)")
    p.add_argument("--base-lr", type=float, default=None, help="override SimSiamConfig.base_lr")
    p.add_argument("--weight-decay", type=float, default=None, help="override SimSiamConfig.weight_decay")
    p.add_argument("--warmup-epochs", type=int, default=None,
                   help="learning-rate warm-up (default: 10%% of --epochs, at most the recipe's)")  # fmt: skip
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="fp32",
                   help="bf16: mixed bfloat16 (also on a CPU); auto: bf16 with a GPU, else fp32")  # fmt: skip
    p.add_argument("--eval-every", type=int, default=0, help="kNN monitor every N epochs (0: off)")
    p.add_argument("--eval-percent", type=int, default=15, help="ExampleGen eval split percentage")
    p.add_argument("--max-images", type=int, default=None, help="use at most N images (round-robin by class)")
    p.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR)
    p.add_argument("--cache-dir", type=Path, default=None, help="decoded-image cache (default ~/.cache/simsiam-tfx)")
    p.add_argument(
        "--time-budget-min",
        type=float,
        default=None,
        help="fit the whole run in this many minutes: a short timing run measures the step and the "
        "scoring first, then the schedule spans as many epochs as fit (at most --epochs); one seed",
    )
    return p


def _validate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    for name in ("image_size", "epochs", "batch_size", "seeds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.eval_every < 0 or args.first_seed < 0:
        parser.error("--eval-every and --first-seed must be >= 0")
    if args.warmup_epochs is not None and not 0 <= args.warmup_epochs <= args.epochs:
        parser.error("--warmup-epochs must lie in 0..--epochs")
    if args.max_images is not None and args.max_images < 2:
        parser.error("--max-images must be >= 2")
    if not 0 < args.eval_percent < 100:
        parser.error("--eval-percent must be in 1..99")
    if args.stored_size is not None and args.stored_size < args.image_size:
        parser.error("--stored-size must be >= --image-size")
    if args.width <= 0 or (args.jitter_strength is not None and args.jitter_strength < 0):
        parser.error("--width must be > 0 and --jitter-strength >= 0")
    if args.grayscale_prob is not None and not 0 <= args.grayscale_prob <= 1:
        parser.error("--grayscale-prob must lie in [0, 1]")
    if args.crop_min_scale is not None and not 0 < args.crop_min_scale <= 1:
        parser.error("--crop-min-scale must lie in (0, 1]")
    if args.time_budget_min is not None and (args.time_budget_min <= 0 or args.seeds != 1):
        parser.error("--time-budget-min must be > 0 and needs --seeds 1")
    try:
        make_config(args, 0)
    except ValueError as err:  # e.g. an --eval-size above the stored size
        parser.error(str(err))


def result_stem(args: argparse.Namespace) -> str:
    stem = f"quality-{args.backend}-{args.backbone}-{args.image_size}px-{args.epochs}ep"
    stem += f"-eval{args.eval_size}px" if args.eval_size is not None else ""
    stem += f"-{args.max_images}img" if args.max_images is not None else ""
    stem += f"-seed{args.first_seed}" if args.first_seed else ""
    return stem + (f"-{args.tag}" if args.tag else "")


def _check_data(data: FlowerData, batch_size: int) -> None:
    if len(data.train) < batch_size:
        raise SystemExit(f"error: {len(data.train)} train images, fewer than one batch of {batch_size}")
    if len(data.eval) == 0:
        raise SystemExit("error: the eval split is empty (too few images for the hash split)")
    if len(np.unique(data.train.labels)) < 2:
        raise SystemExit("error: the train split has fewer than 2 classes")


def train_batches(images: np.ndarray, batch_size: int, seed: int) -> Iterator[tuple[np.ndarray]]:
    """Endless ``(uint8 batch,)`` tuples (Keras' generator format for inputs without targets),
    reshuffled each pass, partial batches dropped (fixed shapes for XLA), as the Trainer's dataset."""
    rng = np.random.default_rng(seed)
    steps = len(images) // batch_size
    while True:
        order = rng.permutation(len(images))
        for i in range(steps):
            yield (images[order[i * batch_size : (i + 1) * batch_size]],)


def baselines_of(run: dict[str, Any]) -> dict[str, dict[str, float]]:
    """`{name: scores}` of every untrained reference of one run record: random init, then the cheap features."""
    return {"random_init": run["random_init"], **run.get("cheap_baselines", {})}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std (sample std; 0 for one seed) of each metric over the seeds; the gain over random
    init and over the strongest baseline (per seed, the best of random init and the cheap features)."""
    from models.baselines import strongest_baseline

    out: dict[str, Any] = {}
    for variant in ("trained", *baselines_of(runs[0])):
        for metric in METRICS:
            vals = np.array([{"trained": r["trained"], **baselines_of(r)}[variant][metric] for r in runs])
            std = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
            out[f"{variant}.{metric}"] = {"mean": round(float(vals.mean()), 4), "std": round(std, 4)}
    for metric in METRICS:
        gain = np.array([r["trained"][metric] - r["random_init"][metric] for r in runs])
        out[f"gain.{metric}"] = {"mean": round(float(gain.mean()), 4)}
        strongest = [strongest_baseline(baselines_of(r), metric) for r in runs]
        over = np.array([r["trained"][metric] - best[1] for r, best in zip(runs, strongest)])
        out[f"gain_over_strongest.{metric}"] = {
            "mean": round(float(over.mean()), 4),
            "baselines": sorted({best[0] for best in strongest}),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _validate(args, parser)
    # Keras picks its backend once, at import: set it before anything imports keras.
    if "keras" in sys.modules and sys.modules["keras"].backend.backend() != args.backend:
        raise SystemExit(f"error: keras was already imported with another backend than {args.backend}")
    os.environ["KERAS_BACKEND"] = args.backend
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    command = "python -m benchmarks.quality " + shlex.join(sys.argv[1:] if argv is None else argv)
    return run(args, command)


def run(args: argparse.Namespace, command: str) -> int:
    t0 = time.perf_counter()
    recipe = make_config(args, 0)
    stored_size, eval_size = recipe.stored_size, recipe.eval_size
    data = load_images(args.data_dir, stored_size, args.max_images, args.eval_percent, args.cache_dir)
    _check_data(data, args.batch_size)
    _progress(
        f"data: {len(data.train)} train / {len(data.eval)} eval images, {len(data.class_names)} classes, "
        f"{len(data.rejected)} rejected, loaded in {time.perf_counter() - t0:.1f}s"
    )
    device, _ = describe_device(args.backend)
    cheap = cheap_baselines(data, eval_size)  # before the time plan: it counts against the budget
    plan = None
    if args.time_budget_min is not None:
        plan = plan_epochs(args, data, budget_s=60 * args.time_budget_min - (time.perf_counter() - t0))
        args.epochs = plan["epochs"]
    runs, artifacts = [], None
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        record, seed_artifacts = run_seed(args, data, seed)
        record["cheap_baselines"] = cheap
        record.update(device=device, backend=args.backend, backbone=args.backbone, image_size=args.image_size,
                      batch_size=args.batch_size, n_train=len(data.train), n_eval=len(data.eval))  # fmt: skip
        if plan:
            record["time_plan"] = plan
        print(json.dumps(record), flush=True)
        runs.append(record)
        artifacts = artifacts or seed_artifacts

    summary = {"summary": summarize(runs), "seeds": args.seeds, "command": command, "device": device,
               "total_wall_s": round(time.perf_counter() - t0, 1)}  # fmt: skip
    print(json.dumps(summary), flush=True)

    out_dir = args.output_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = result_stem(args)
    (out_dir / f"{stem}.json").write_text(json.dumps({**summary, "runs": runs}, indent=2) + "\n")
    _write_plots(out_dir, stem, artifacts, data, args)
    return 0


def run_seed(args: argparse.Namespace, data: FlowerData, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Scores a randomly initialised encoder, pretrains it, scores it again.

    Returns the JSON record and the arrays for the plots (history, eval features).
    """
    import keras  # only here: main() has set KERAS_BACKEND by now

    from models.config import configure_precision
    from models.monitors import KNNMonitor, LearningRateLogger
    from models.simsiam import EpochRandomStreams, build_simsiam, compile_simsiam

    t0 = time.perf_counter()
    config = make_config(args, seed)
    policy = configure_precision(describe_device(args.backend)[1], args.precision)
    _set_seed(args.backend, seed)
    mean, std = data.pixel_mean_std()
    steps_per_epoch = len(data.train) // args.batch_size
    model = build_simsiam(config, mean=mean, std=std)
    compile_simsiam(model, config, steps_per_epoch=steps_per_epoch)

    random_init, random_eval_features = _score(model.encoder, data, config.eval_size)
    _progress(f"seed {seed}: random init linear_probe={random_init['linear_probe']:.4f} knn={random_init['knn']:.4f}")

    callbacks: list[keras.callbacks.Callback] = [EpochRandomStreams(), LearningRateLogger()]
    if args.eval_every:
        callbacks.append(KNNMonitor(data.train.images, data.train.labels, data.eval.images, data.eval.labels,
                                    every_n_epochs=args.eval_every, k=KNN_K, evaluate_at_start=False,
                                    view_size=config.eval_size))  # fmt: skip
    progress = _epoch_progress(args.epochs)
    callbacks.append(progress)  # last: it records what the monitors logged
    t_train = time.perf_counter()
    model.fit(train_batches(data.train.images, args.batch_size, seed), epochs=args.epochs,
              steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=0)  # fmt: skip
    train_s = time.perf_counter() - t_train

    trained, trained_eval_features = _score(model.encoder, data, config.eval_size)
    history = progress.series()
    steps = steps_per_epoch * args.epochs
    record = {
        "seed": seed, "trained": trained, "random_init": random_init, "epochs": args.epochs, "steps": steps,
        "base_lr": config.base_lr, "weight_decay": config.weight_decay, "warmup_epochs": config.warmup_epochs,
        "precision": policy, "stored_size": config.stored_size, "eval_size": config.eval_size,
        "width": config.width,
        "jitter_strength": config.jitter_strength, "grayscale_prob": config.grayscale_prob,
        "proj_dim": config.proj_dim, "proj_hidden_dim": config.proj_hidden_dim,
        "pred_hidden_dim": config.pred_hidden_dim, "crop_min_scale": config.crop_min_scale,
        "small_stem": config.small_stem,
        "train_s": round(train_s, 1), "wall_s": round(time.perf_counter() - t0, 1),
        "views_per_s": views_per_second(steps, args.batch_size, train_s),
        "views_per_s_after_epoch_1": _steady_views_per_s(progress.epoch_ends, steps_per_epoch, args.batch_size),
        "history": history,
    }  # fmt: skip
    artifacts = {"history": history, "eval_features_trained": trained_eval_features,
                 "eval_features_random_init": random_eval_features}  # fmt: skip
    return record, artifacts


def cheap_baselines(data: FlowerData, image_size: int) -> dict[str, dict[str, float]]:
    """The untrained features of `models.baselines` scored on the eval split (deterministic: once per run)."""
    from models.baselines import cheap_baseline_scores

    t0 = time.perf_counter()
    scores = cheap_baseline_scores(
        data.train.images, data.train.labels, data.eval.images, data.eval.labels, image_size, k=KNN_K
    )
    scores = {name: _rounded(s) for name, s in scores.items()}
    _progress(
        "cheap baselines: "
        + ", ".join(f"{n} linear_probe={s['linear_probe']:.4f} knn={s['knn']:.4f}" for n, s in scores.items())
        + f" ({time.perf_counter() - t0:.0f}s)"
    )
    return scores


def plan_epochs(args: argparse.Namespace, data: FlowerData, budget_s: float) -> dict[str, Any]:
    """How many epochs (at most `args.epochs`) fit in `budget_s` seconds of what is left of the run.

    Times a throwaway model of the same recipe: 3 short epochs (the first includes compilation,
    which the real model pays again) and one scoring pass (the run scores twice: random init and
    trained). Training gets what remains after compilation, both scorings and a 10% margin.
    Returns the plan with its measurements (seconds), to be kept in the result JSON.
    """
    from models.config import configure_precision
    from models.simsiam import build_simsiam, compile_simsiam

    started = time.perf_counter()
    steps_per_epoch = len(data.train) // args.batch_size
    probe_steps = max(1, min(steps_per_epoch, 10))
    config = make_config(args, 0)
    configure_precision(describe_device(args.backend)[1], args.precision)
    model = build_simsiam(config, *data.pixel_mean_std())
    compile_simsiam(model, config, steps_per_epoch=steps_per_epoch)
    timer = _epoch_progress(3, quiet=True)
    model.fit(
        train_batches(data.train.images, args.batch_size, 0),
        epochs=3,
        steps_per_epoch=probe_steps,
        callbacks=[timer],
        verbose=0,
    )
    step_s = (timer.epoch_ends[2] - timer.epoch_ends[0]) / (2 * probe_steps)
    compile_s = max(0.0, timer.epoch_ends[0] - step_s * probe_steps)
    score_started = time.perf_counter()
    _score(model.encoder, data, config.eval_size)
    score_s = time.perf_counter() - score_started
    left = budget_s - (time.perf_counter() - started)
    train_budget = 0.9 * (left - compile_s - 2 * score_s)
    epoch_s = step_s * steps_per_epoch
    epochs = int(max(1, min(args.epochs, train_budget // epoch_s)))
    plan = {
        "budget_s": round(budget_s, 1),
        "step_s": round(step_s, 5),
        "compile_s": round(compile_s, 1),
        "score_s": round(score_s, 1),
        "epoch_s": round(epoch_s, 3),
        "requested_epochs": args.epochs,
        "epochs": epochs,
        "planning_s": round(time.perf_counter() - started, 1),
    }
    _progress(
        f"time plan: {epochs} of {args.epochs} epochs fit in {budget_s:.0f}s ({epoch_s:.2f}s per epoch, "
        f"compile {compile_s:.0f}s, scoring {score_s:.0f}s)"
    )
    return plan


def make_config(args: argparse.Namespace, seed: int):
    """The SimSiamConfig of this run: the recipe's defaults, with the command line's overrides."""
    from models.config import SimSiamConfig

    optional = (
        ("base_lr", args.base_lr),
        ("weight_decay", args.weight_decay),
        ("stored_size", args.stored_size),
        ("eval_size", args.eval_size),
        ("jitter_strength", args.jitter_strength),
        ("grayscale_prob", args.grayscale_prob),
        ("proj_dim", args.proj_dim),
        ("proj_hidden_dim", args.proj_hidden_dim),
        ("pred_hidden_dim", args.pred_hidden_dim),
        ("crop_min_scale", args.crop_min_scale),
    )
    overrides = {k: v for k, v in optional if v is not None}
    if args.small_stem != "auto":
        overrides["small_stem"] = args.small_stem == "on"
    default_warmup = SimSiamConfig.__dataclass_fields__["warmup_epochs"].default
    warmup = args.warmup_epochs if args.warmup_epochs is not None else min(default_warmup, args.epochs // 10)
    return SimSiamConfig(backbone=args.backbone, image_size=args.image_size, batch_size=args.batch_size,
                         width=args.width, epochs=args.epochs, warmup_epochs=warmup, seed=seed,
                         **overrides)  # fmt: skip


def _score(encoder, data: FlowerData, view_size: int) -> tuple[dict[str, float], np.ndarray]:
    """Linear probe (the pipeline's: `fit_linear_probe`, weight decay by cross-validation on the train
    split) and kNN accuracy of frozen features on the eval split, on the `view_size` px evaluation
    view; also the eval features."""
    from models.encoder import encoder_at_size
    from models.evaluation import frozen_feature_scores
    from models.monitors import embed

    encoder = encoder_at_size(encoder, view_size)
    train_f, eval_f = embed(encoder, data.train.images), embed(encoder, data.eval.images)
    scores = frozen_feature_scores(train_f, data.train.labels, eval_f, data.eval.labels, k=KNN_K)
    return _rounded(scores), eval_f


def _rounded(scores: dict[str, float]) -> dict[str, float]:
    """`frozen_feature_scores` with the accuracies rounded to 4 digits (the chosen weight decay as is)."""
    return {k: round(v, 4) if k != "probe_weight_decay" else v for k, v in scores.items()}


def _epoch_progress(epochs: int, quiet: bool = False):
    """`EpochHistory` that also prints one line per epoch (epoch, loss, collapse_std, knn, lr, elapsed)
    to stderr (unless `quiet`) and keeps the epoch end times."""
    from models.monitors import EpochHistory

    class EpochProgress(EpochHistory):
        def on_train_begin(self, logs=None) -> None:
            self.t0 = time.perf_counter()
            self.epoch_ends: list[float] = []

        def on_epoch_end(self, epoch: int, logs=None) -> None:
            super().on_epoch_end(epoch, logs)
            logs = logs or {}
            self.epoch_ends.append(time.perf_counter() - self.t0)
            parts = [f"epoch {epoch + 1}/{epochs}"]
            parts += [f"{k} {float(logs[k]):.4f}" for k in ("loss", "collapse_std", "knn_accuracy") if k in logs]
            if "learning_rate" in logs:
                parts.append(f"lr {float(logs['learning_rate']):.5f}")
            parts.append(f"elapsed {self.epoch_ends[-1]:.0f}s")
            if not quiet:
                _progress("  ".join(parts))

    return EpochProgress()


def _steady_views_per_s(epoch_ends: list[float], steps_per_epoch: int, batch_size: int) -> float | None:
    """Throughput without the first epoch (which includes tracing/compilation)."""
    if len(epoch_ends) < 2:
        return None
    return views_per_second(steps_per_epoch * (len(epoch_ends) - 1), batch_size, epoch_ends[-1] - epoch_ends[0])


def _set_seed(backend: str, seed: int) -> None:
    """``keras.utils.set_random_seed`` without its TensorFlow import on JAX: there Keras draws its
    default seeds from Python's ``random`` and the data order comes from numpy."""
    if backend == "jax":
        random.seed(seed)
        np.random.seed(seed)
    else:
        import keras

        keras.utils.set_random_seed(seed)


def _write_plots(out_dir: Path, stem: str, artifacts: dict[str, Any], data: FlowerData, args) -> None:
    try:
        from components.report.figures import plot_embedding_map, plot_training_curves
    except ImportError as error:  # e.g. a GPU machine without matplotlib: the JSON is the result
        _progress(f"plots skipped: {error}")
        return
    title = f"{args.backbone} {args.image_size}px, {args.epochs} epochs, {args.backend}"
    plot_training_curves(artifacts["history"], out_dir / f"{stem}-curves.png", title=title)
    for key, suffix, label in (("trained", "embedding", "trained"), ("random_init", "embedding-random", "random init")):
        plot_embedding_map(
            artifacts[f"eval_features_{key}"], data.eval.labels, data.class_names,
            out_dir / f"{stem}-{suffix}.png", title=f"eval split, {label}: {title}",
        )  # fmt: skip


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def views_per_second(steps: int, batch_size: int, seconds: float) -> float:
    """Augmented views per second: every step sees two views of each image."""
    return round(2 * steps * batch_size / seconds, 1) if seconds > 0 else math.nan


if __name__ == "__main__":
    sys.exit(main())
