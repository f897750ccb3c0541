"""TFX Trainer `run_fn` for SimSiam pre-training (no labels are used for the loss).

It trains on every image of its train splits, labelled or not ("train" and "unlabeled_train"),
streamed through a bounded shuffle buffer (components/train/data.py); the kNN monitor and the
untrained baselines use the labelled images (label >= 0) of a fixed, bounded sample of each split
(components/examples.py), and are skipped when there are none. Without labels (custom_config
"export_serving_model") it also writes the embedding-only serving SavedModel the Pusher serves
(components/export/serving_model.py).

Resumable: checkpoints go to a directory keyed by the inputs and the config, outside
the per-execution output, so re-running a killed Trainer continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any, NamedTuple

import keras
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import FnArgs

from components import features as F
from components.export.serving_model import export_serving_model
from components.train import cluster as multi_worker
from components.train import data as trainer_data
from components.train.checkpoint import IntervalCheckpoint, remove_run_checkpoints
from components.train.encoder_io import load_encoder, save_encoder
from components.train.history import HISTORY_FILE, HistoryFile
from components.train.native_logs import start_xla_quietly
from components.train.trainer_config import SimSiamTrainerConfig
from models.baselines import cheap_baseline_scores, strongest_baseline
from models.config import configure_precision
from models.encoder import encoder_at_size
from models.evaluation import frozen_feature_scores
from models.monitors import KNNMonitor, LearningRateLogger, embed
from models.simsiam import EpochRandomStreams, build_simsiam, compile_simsiam

CHECKPOINT_STATE_DIR = "state"  # in a checkpoint folder: the chief's training state, which every worker restores


class CollapseError(RuntimeError):
    """SimSiam's representation collapsed to a constant: the encoder is useless."""


def training_devices(requested: list[str] | None = None) -> list[str]:
    """The devices to train on: `requested` (SimSiamTrainerConfig.devices), else every GPU, else
    none (the default strategy: the CPU)."""
    if requested:
        return list(requested)
    return [d.name.replace("physical_device:", "") for d in tf.config.list_physical_devices("GPU")]


def distribution_strategy(devices: list[str]) -> tf.distribute.Strategy:
    """`MirroredStrategy` over `devices` when there are several (synchronous data parallelism: each
    replica takes a slice of the global batch, gradients are summed across replicas); else the
    default strategy."""
    return tf.distribute.MirroredStrategy(devices) if len(devices) > 1 else tf.distribute.get_strategy()


def step_jit_compile(has_gpu: bool, replicas: int) -> bool | str:
    """`jit_compile` for the SimSiam step (the augmentation is XLA-compiled on its own in any case).

    One GPU: True, the whole step under XLA. Several replicas: False. Keras 3.12 on TensorFlow 2.16
    cannot run a jit-compiled step under MirroredStrategy: the step fails with XLA's "Trying to access
    resource .../replica_1 located in device ...:1 from device ...:0" (keras-team/keras#19005; seen
    here on 2 logical CPU devices, 2026-11-30). CPU only: Keras' "auto" (no XLA for the step: oneDNN's
    convolutions are faster there than XLA's).
    """
    if replicas > 1:
        return False
    return True if has_gpu else "auto"


def checkpoint_dir(root: str, train_files: list[str], config: dict[str, Any]) -> str:
    """Same inputs and config -> same directory, whichever TFX execution asks."""
    key = json.dumps({"files": sorted(train_files), "config": config}, sort_keys=True)
    return os.path.join(root, hashlib.sha256(key.encode()).hexdigest()[:16])


def check_not_collapsed(collapse_std: float | None, threshold: float, history_path: str) -> None:
    """Raises CollapseError when the final collapse metric is missing, not finite, or below `threshold`."""
    if collapse_std is None or not np.isfinite(collapse_std) or collapse_std < threshold:
        raise CollapseError(
            f"SimSiam training collapsed: collapse_std={collapse_std} < {threshold} (about 1.0 is healthy, "
            "0 is a constant output). Check the learning rate, the weight decay and that the target branch "
            f"has its stop-gradient; the per-epoch history is in {history_path}"
        )


def untrained_baselines(encoder: keras.Model, knn_data: tuple, view_size: int) -> dict[str, dict[str, float]]:
    """`{"random_init": ..., "random_filters": ..., "colour_histograms": ...}`, each
    `frozen_feature_scores` (kNN, linear probe) on the labelled eval images: `encoder` before any
    training step, and the cheap features of models/baselines.py, both on the evaluation view of
    `view_size` px. `knn_data`: (train images, labels, eval images, labels), stored uint8 images.
    Prints each."""
    train_x, train_y, eval_x, eval_y = knn_data
    encoder = encoder_at_size(encoder, view_size)
    scores = {"random_init": frozen_feature_scores(embed(encoder, train_x), train_y, embed(encoder, eval_x), eval_y)}
    scores.update(cheap_baseline_scores(train_x, train_y, eval_x, eval_y, view_size))
    for name, values in scores.items():
        print(
            f"[simsiam] baseline {name}: kNN accuracy {values['knn']:.4f}, linear probe {values['linear_probe']:.4f}",
            flush=True,
        )
    return scores


class EpochPrinter(keras.callbacks.Callback):
    """One line per epoch (TFX logs are read in files and consoles, not progress bars)."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs, self.t0 = epochs, time.time()

    def on_epoch_end(self, epoch, logs=None):
        shown = " ".join(f"{k}={v:.4f}" for k, v in sorted((logs or {}).items()))
        print(f"[simsiam] epoch {epoch + 1}/{self.epochs} {shown} ({time.time() - self.t0:.0f}s)", flush=True)


class _Splits(NamedTuple):
    """The hash samples of both splits (components/train/data.py `SplitSample`): at most `sample_size`
    stored images each, with their labels (-1: unlabelled) and the splits' full counts."""

    train: trainer_data.SplitSample
    eval: trainer_data.SplitSample

    def knn_data(self) -> tuple | None:
        """(train images, labels, eval images, labels) of the sampled labelled images, when kNN can be
        measured on them (labelled eval images, and two classes at least among the labelled train images)."""
        train, ev = self.train.labels >= 0, self.eval.labels >= 0
        if not ev.any() or len(np.unique(self.train.labels[train])) < 2:
            return None
        return self.train.images[train], self.train.labels[train], self.eval.images[ev], self.eval.labels[ev]

    def counts(self) -> dict[str, int]:
        return {
            "train_images": self.train.examples,
            "train_images_labeled": self.train.labelled,
            "eval_images": self.eval.examples,
            "eval_images_labeled": self.eval.labelled,
            "sample_train_images": int(len(self.train.images)),
            "sample_eval_images": int(len(self.eval.images)),
        }


def run_fn(fn_args: FnArgs) -> None:
    """The TFX Trainer entry point: data, model, fit (resumable), save; the helpers below do the rest.
    With a `TF_CONFIG` cluster, every replica runs it on its share of the data (components/train/cluster.py)."""
    cluster = multi_worker.Cluster.from_environment()
    cluster_strategy = multi_worker.multi_worker_strategy(cluster)  # before any other TensorFlow op
    settings = SimSiamTrainerConfig.from_custom_config(fn_args.custom_config)
    config = settings.simsiam
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    policy = configure_precision(has_gpu, settings.precision)
    keras.utils.set_random_seed(config.seed)
    start_xla_quietly()  # the augmentation is XLA-compiled: its start-up notices stay out of the terminal

    # Data: the pixel statistics of every training image (the Transform's analyzers), and a bounded
    # sample of each split's stored images for the kNN monitor and the baselines; training streams.
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    read = fn_args.data_accessor.tf_dataset_factory
    mean, std = trainer_data.pixel_stats(read, fn_args.train_files, tft_output)
    splits = _Splits(
        trainer_data.sample_split(read, fn_args.train_files, settings.sample_size, config.stored_size),
        trainer_data.sample_split(read, fn_args.eval_files, settings.sample_size, config.stored_size),
    )
    shard = multi_worker.shard(cluster, read, fn_args.train_files, splits.train.examples, config.batch_size)
    steps_per_epoch = shard.steps_per_epoch
    if fn_args.train_steps:  # TFX's TrainArgs.num_steps (0 in the pipeline: whole epochs) caps the run
        steps_per_epoch = min(steps_per_epoch, max(1, -(-int(fn_args.train_steps) // config.epochs)))
    knn_data = splits.knn_data()
    _print_data(splits, knn_data is not None, steps_per_epoch, config.epochs, has_gpu, policy)

    # Model: on every device given (or found), with the step compiled as the devices allow.
    devices = training_devices(list(settings.devices))
    strategy = cluster_strategy or distribution_strategy(devices)
    replicas = strategy.num_replicas_in_sync
    with strategy.scope():
        model = build_simsiam(config, mean=mean, std=std, sync_batch_norm=replicas > 1)
        compile_simsiam(model, config, steps_per_epoch=steps_per_epoch, jit_compile=step_jit_compile(has_gpu, replicas))
    if cluster.multi_worker:
        multi_worker.rank_one_logs(model)
    print(
        f"[simsiam] {replicas} replica(s) on {devices or ['the CPU']}, step jit_compile={model.jit_compile}", flush=True
    )
    # The baselines SimSiam must beat, scored the same way before any step: the same encoder at its
    # random initialisation, and the untrained features of models/baselines.py.
    baselines = untrained_baselines(model.encoder, knn_data, config.eval_size) if knn_data else {}

    # Fit, resuming from this recipe's and data's latest checkpoint.
    ckpt = checkpoint_dir(settings.checkpoint_root, list(fn_args.train_files), config.to_dict())
    out = multi_worker.outputs(  # a non-chief writes the same files to its own paths (TF's rule)
        cluster, os.path.join(ckpt, CHECKPOINT_STATE_DIR), os.path.join(ckpt, HISTORY_FILE), fn_args.model_run_dir,
        fn_args.serving_model_dir,
    )  # fmt: skip
    agree = multi_worker.chief_decides(cluster_strategy, cluster)
    checkpoint = IntervalCheckpoint(out.checkpoint, io_fraction=settings.checkpoint_io_fraction, agree=agree)
    with strategy.scope():  # restoring builds the optimizer's variables: under a strategy, in its scope
        initial_epoch = _restore(checkpoint, model, ckpt, settings.checkpoint_root, config.epochs)
    history = HistoryFile(out.history, initial_epoch=initial_epoch)
    callbacks = [  # order matters: streams first, then the callbacks that add to the logs, then the writers
        EpochRandomStreams(),
        LearningRateLogger(),
        *(
            [KNNMonitor(*knn_data, settings.knn_every, evaluate_at_start=False, view_size=config.eval_size)]
            if knn_data
            else []
        ),
        history,
        keras.callbacks.TensorBoard(log_dir=out.model_run, update_freq="epoch"),
        EpochPrinter(config.epochs),
        checkpoint,
    ]
    if initial_epoch < config.epochs:  # a run killed after its last checkpoint only has to export

        def dataset(batch_size: int) -> tf.data.Dataset:
            return trainer_data.image_dataset(
                read, shard.files, config.stored_size, batch_size, steps_per_epoch, config.epochs,
                shuffle_seed=config.seed, initial_epoch=initial_epoch, shuffle_buffer=settings.shuffle_buffer,
                cache=settings.cache_images, element_shard=shard.element,
            )  # fmt: skip

        train_ds = (
            multi_worker.distribute(strategy, config.batch_size, dataset)
            if cluster.multi_worker
            else dataset(config.batch_size)
        )
        model.fit(
            train_ds, epochs=config.epochs, initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch,
            callbacks=callbacks, verbose=0,
        )  # fmt: skip
    else:
        history.on_train_begin()  # reads the finished run's history back

    # Save: the summary once, the collapse check, the encoder (and, without labels, the serving model).
    if cluster.is_chief:  # a non-chief's history starts at its resume (the chief's file holds it all)
        _write_summary(
            _summary(history, baselines, checkpoint, splits, steps_per_epoch, replicas), fn_args.model_run_dir,
            settings.collapse_threshold,
        )  # fmt: skip
    random_init = baselines.get("random_init", {})
    recipe = {
        "backbone": config.backbone, "image_size": config.image_size, "stored_size": config.stored_size,
        "eval_size": config.eval_size, "width": config.width, "small_stem": config.small_stem, "mean": mean,
        "std": std, "random_init_knn_accuracy": random_init.get("knn"),
    }  # fmt: skip
    save_encoder(model.encoder, out.serving_model, recipe)  # every worker saves (TF's rule), the chief exports
    if settings.export_serving_model and cluster.is_chief:  # no labels: what the Pusher serves
        encoder, _ = load_encoder(fn_args.serving_model_dir)  # a plain copy, outside any distribution strategy
        export_serving_model(fn_args.serving_model_dir, tft_output, encoder, None, None, config.stored_size)
        print(f"[simsiam] embedding-only serving model written to {fn_args.serving_model_dir}", flush=True)
    multi_worker.finish(cluster, out, fn_args.serving_model_dir, settings.export_serving_model)
    # Exported: the resume checkpoints have done their job (a kill before this line still resumes).
    if cluster.is_chief and not settings.keep_checkpoints and remove_run_checkpoints(ckpt):
        print(f"[simsiam] model exported: removed its resume checkpoints {ckpt} (--keep-checkpoints keeps them)")


def _write_summary(summary: dict[str, Any], model_run_dir: str, collapse_threshold: float) -> None:
    """Writes `monitor_history.json` into `model_run_dir`, then raises CollapseError if training collapsed."""
    summary_path = os.path.join(model_run_dir, F.MONITOR_HISTORY_FILE)
    os.makedirs(model_run_dir, exist_ok=True)
    with open(summary_path, "w") as f:
        json.dump(summary, f, indent=2)
    check_not_collapsed(summary["final"].get("collapse_std"), collapse_threshold, summary_path)


def _print_data(
    splits: _Splits, measurable: bool, steps_per_epoch: int, epochs: int, has_gpu: bool, policy: str
) -> None:
    n = splits.counts()
    print(
        f"[simsiam] training on {n['train_images']} images ({n['train_images_labeled']} labelled, "
        f"{n['train_images'] - n['train_images_labeled']} unlabelled); {n['eval_images']} held-out eval images "
        f"({n['eval_images_labeled']} labelled); {steps_per_epoch} steps per epoch, "
        f"{epochs} epochs, gpu={has_gpu}, precision={policy}",
        flush=True,
    )
    if measurable and (n["sample_train_images"] < n["train_images"] or n["sample_eval_images"] < n["eval_images"]):
        print(
            f"[simsiam] the kNN monitor and the baselines use a fixed sample of {n['sample_train_images']} train and "
            f"{n['sample_eval_images']} eval images (sample_size; chosen by a hash of the image ids)",
            flush=True,
        )
    if not measurable:
        print(
            "[simsiam] no labelled images to measure with: no kNN monitor, no random-init baseline "
            "(the label-free gate measures the model)",
            flush=True,
        )


def _restore(checkpoint: IntervalCheckpoint, model: keras.Model, ckpt: str, root: str, epochs: int) -> int:
    """Loads `ckpt`'s latest checkpoint into `model`; returns the epochs it holds (0: none). A resume says
    so itself (HistoryFile); a fresh start says why it is one."""
    os.makedirs(ckpt, exist_ok=True)
    initial_epoch = checkpoint.restore(model, os.path.join(ckpt, CHECKPOINT_STATE_DIR))  # the chief's, on every worker
    if initial_epoch == 0:
        others = [d for d in os.listdir(root) if d != os.path.basename(ckpt)]
        unused = f" ({len(others)} checkpoint folder(s) of other recipes or data in {root} are not used)"
        print(
            f"[simsiam] starting at epoch 1 of {epochs}: no checkpoint of this recipe and data yet"
            + (unused if others else ""),
            flush=True,
        )
    return initial_epoch


def _summary(
    history: HistoryFile,
    baselines: dict,
    checkpoint: IntervalCheckpoint,
    splits: _Splits,
    steps_per_epoch: int,
    replicas: int,
) -> dict[str, Any]:
    """What `monitor_history.json` holds (the BaselineGate, the report and the run summary read it):
    the per-epoch history and its last values, the untrained baselines, the data and checkpoint counts."""
    print(
        f"[simsiam] {checkpoint.saves} checkpoint(s), {checkpoint.io_seconds:.1f}s of I/O = "
        f"{100 * checkpoint.measured_io_fraction:.1f}% of training time",
        flush=True,
    )
    series = history.series()
    random_init = baselines.get("random_init", {})
    summary = {
        "random_init_knn_accuracy": random_init.get("knn"),
        "random_init_linear_probe_accuracy": random_init.get("linear_probe"),
        # {name: {"knn", "linear_probe", "probe_weight_decay"}}: random init and the cheap features
        "baselines": baselines,
        "final": {k: next((v for v in reversed(vs) if v is not None), None) for k, vs in series.items()},
        "history": series,
        "steps_per_epoch": steps_per_epoch,
        **splits.counts(),
        "replicas": replicas,
        "checkpoint": {
            "saves": checkpoint.saves,
            "io_seconds": round(checkpoint.io_seconds, 3),
            "train_seconds": round(checkpoint.train_seconds, 3),
            "io_fraction": round(checkpoint.measured_io_fraction, 4),
        },
    }
    knn, best = summary["final"].get("knn_accuracy"), strongest_baseline(baselines, "knn")
    if knn is not None and best is not None:
        print(
            f"[simsiam] kNN accuracy after training {knn:.4f}; the strongest untrained baseline, {best[0]}, "
            f"{best[1]:.4f}: gain {knn - best[1]:+.4f}",
            flush=True,
        )
    return summary
