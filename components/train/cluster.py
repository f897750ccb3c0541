"""The SimSiam Trainer on several hosts: `tf.distribute.MultiWorkerMirroredStrategy` from `TF_CONFIG`.

On Vertex AI a Trainer with several replicas gets one `TF_CONFIG` per replica
(`{"cluster": {"chief": [...], "worker": [...]}, "task": {"type": ..., "index": ...}}`,
https://cloud.google.com/vertex-ai/docs/training/distributed-training#tf-config) and every replica
runs the whole TFX Trainer executor, so every replica runs `run_fn`. What this module adds to it:

- `Cluster.from_environment()`: who this process is. One host (no `TF_CONFIG`, or a cluster of one
  task) is the `Cluster()` default, and then nothing below changes the single-process run.
- `multi_worker_strategy()`: the strategy, created before `run_fn`'s first TensorFlow op (TF's
  MultiWorkerMirroredStrategy docs: the collective runtime is configured when it is created).
- `shard(...)`: which training images this worker reads (every image by exactly one worker), and the
  steps per epoch every worker can take (collectives need the same number of steps everywhere).
- `rank_one_logs(model)`: the fix for Keras 3.12's `fit` under a multi-worker strategy.
- `chief_decides(...)`: one decision (the checkpoint cadence) shared by all workers.
- `outputs(...)` / `finish(...)`: TF's rule for saving under MultiWorkerMirroredStrategy (every
  worker saves, since saving reads sync-on-read variables through collectives; non-chiefs write
  to their own paths, https://www.tensorflow.org/tutorials/distribute/multi_worker_with_keras
  "Model saving and loading"), and the non-chief's wait for the chief's export.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import tensorflow as tf

from components import examples
from components.export.warmup import WARMUP_DIR, WARMUP_FILE
from components.train.encoder_io import ENCODER_RECIPE
from components.train.history import HISTORY_FILE

CHIEF, WORKER = "chief", "worker"
WORKERS_DIR = "workers"  # under a checkpoint folder: each non-chief's own latest checkpoint


@dataclass(frozen=True)
class Cluster:
    """This process's place in the training cluster; the default is a single host.

    `rank` is TensorFlow's id of the task among the workers (`multi_worker_util.id_in_cluster`):
    the chief is 0 and `worker` i is i + 1 when there is a chief; without a chief `worker` 0 is the
    chief, as TensorFlow decides.
    """

    task_type: str = CHIEF
    task_index: int = 0
    num_workers: int = 1
    rank: int = 0

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> Cluster:
        """Parses `TF_CONFIG` (from `environ`, default os.environ); a cluster of one task is one host,
        whatever its task is called. Raises ValueError for a larger cluster this Trainer cannot train
        on: parameter servers, an evaluator task, a task type or index that the cluster does not list."""
        raw = (os.environ if environ is None else environ).get("TF_CONFIG")
        if not raw:
            return cls()
        config = json.loads(raw)
        spec = config.get("cluster") or {}
        if sum(len(addresses) for addresses in spec.values()) <= 1:  # one replica (Vertex AI sets TF_CONFIG then too)
            return cls()
        unsupported = set(spec) - {CHIEF, WORKER}
        if unsupported:
            raise ValueError(
                f"TF_CONFIG: the SimSiam Trainer runs chief/worker clusters only, not {sorted(unsupported)}"
            )
        task = config.get("task") or {}
        task_type, task_index = task.get("type", CHIEF), int(task.get("index", 0))
        if task_type not in spec or not 0 <= task_index < len(spec[task_type]):
            raise ValueError(f"TF_CONFIG: task {task_type}:{task_index} is not in the cluster {spec}")
        chiefs = len(spec.get(CHIEF, []))
        rank = task_index + (chiefs if task_type == WORKER else 0)
        return cls(task_type, task_index, chiefs + len(spec.get(WORKER, [])), rank)

    @property
    def multi_worker(self) -> bool:
        return self.num_workers > 1

    @property
    def is_chief(self) -> bool:
        return self.rank == 0

    @property
    def name(self) -> str:
        return f"{self.task_type}-{self.task_index}"


def multi_worker_strategy(cluster: Cluster) -> tf.distribute.Strategy | None:
    """`MultiWorkerMirroredStrategy` (collectives over gRPC, between the hosts of `TF_CONFIG`) when
    `cluster` has several workers, else None. Call it before any other TensorFlow op of the process."""
    return tf.distribute.MultiWorkerMirroredStrategy() if cluster.multi_worker else None


class Shard(NamedTuple):
    """What one worker trains on: `files` (patterns or files), and `element` = (num_shards, index)
    when the worker then keeps every num_shards-th image of their stream (None: all of them)."""

    files: Sequence[str]
    element: tuple[int, int] | None
    steps_per_epoch: int


def shard_files(files: Sequence[str], num_workers: int, rank: int) -> tuple[list[str], tuple[int, int] | None]:
    """By file when every worker gets the same number of files (TF's `AutoShardPolicy.FILE`, without
    its imbalance), else by element (`AutoShardPolicy.DATA`: all files read, every num_workers-th
    image kept). Either way every image belongs to exactly one worker. `files` are sorted first, so
    every worker computes the same split."""
    files = sorted(files)
    if len(files) >= num_workers and len(files) % num_workers == 0:
        return files[rank::num_workers], None
    return files, (num_workers, rank)


def shard(
    cluster: Cluster,
    read: Callable,
    file_patterns: Sequence[str],
    num_images: int,
    batch_size: int,
) -> Shard:
    """This worker's `Shard` of the `num_images` training images in `file_patterns` (read through the
    TFXIO dataset factory `read`: components/examples.py); `batch_size` is
    the global batch. One host: all files, `num_images // batch_size` steps (at least 1), as ever.

    Several: each worker reads `batch_size / num_workers` images per step; the steps per epoch are
    what the smallest shard allows, so all workers take the same number of steps. Shards by file
    are counted (each worker counts every shard, one pass over the split) since files differ in size.
    Raises ValueError when the global batch does not split evenly, or a shard cannot fill one step.
    """
    if not cluster.multi_worker:
        return Shard(list(file_patterns), None, max(1, num_images // batch_size))
    if batch_size % cluster.num_workers:
        raise ValueError(f"batch_size {batch_size} must be a multiple of the {cluster.num_workers} workers")
    files = sorted(f for pattern in file_patterns for f in tf.io.gfile.glob(pattern))
    mine, element = shard_files(files, cluster.num_workers, cluster.rank)
    if element is None:
        sizes = [examples.count(read, files[i :: cluster.num_workers]) for i in range(cluster.num_workers)]
    else:
        sizes = [len(range(i, num_images, cluster.num_workers)) for i in range(cluster.num_workers)]
    steps = min(sizes) // (batch_size // cluster.num_workers)
    if steps < 1:
        raise ValueError(
            f"the shards hold {sizes} images: too few for one step of {batch_size // cluster.num_workers} each"
        )
    return Shard(mine, element, steps)


def distribute(
    strategy: tf.distribute.Strategy, batch_size: int, dataset: Callable[[int], tf.data.Dataset]
) -> tf.distribute.DistributedDataset:
    """`dataset(per-replica batch size)` on each worker, as `strategy.distribute_datasets_from_function`
    does: no auto-sharding or re-batching by TF (`shard` decides what each worker reads).

    The uint8 images become int32 (the model casts them to float32 first, so nothing else changes):
    Keras' `_maybe_symbolic_build` all-reduces the first batch with MEAN under a multi-worker strategy,
    and `CollectiveReduceV2` has no uint8 kernel ("Value for attr 'T' of uint8 is not in the list of
    allowed values").
    """

    def per_worker(context: tf.distribute.InputContext) -> tf.data.Dataset:
        images = dataset(context.get_per_replica_batch_size(batch_size))
        return images.map(lambda x: tf.cast(x, tf.int32))

    return strategy.distribute_datasets_from_function(per_worker)


def rank_one_logs(model) -> None:
    """Makes `model.train_step` return its logs as rank-1 `[1]` tensors instead of scalars.

    Keras 3.12's TensorFlow trainer reduces the step's logs under a multi-worker strategy with
    `strategy.reduce("MEAN", v, axis=0)`, which fails on a scalar with "Invalid reduction dimension 0
    for input with 0 dimensions" (keras-team/keras#20585, tensorflow/tensorflow#72388). The MEAN over
    axis 0 of the replicas' `[1]` values is the mean over replicas, the value a single host logs.
    """
    step = model.train_step

    def train_step(data):
        return {name: tf.reshape(value, [1]) for name, value in step(data).items()}

    model.train_step = train_step


def chief_decides(strategy: tf.distribute.Strategy | None, cluster: Cluster) -> Callable[[bool], bool]:
    """A function `decision -> the chief's decision`, the same on every worker (an all-reduce of the
    chief's flag). For decisions made from a local clock (the checkpoint cadence): saves run
    collectives, so all workers must save at the same epochs. One host: the decision itself."""
    if strategy is None:
        return bool

    def agree(decision: bool) -> bool:
        flag = tf.constant(1.0 if decision and cluster.is_chief else 0.0)
        total = strategy.reduce("SUM", strategy.run(lambda: tf.identity(flag)), axis=None)
        return float(total) > 0

    return agree


class Outputs(NamedTuple):
    """Where this worker writes: the chief the Trainer's real folders, a non-chief its own."""

    checkpoint: str  # the chief's checkpoint folder, or its own one beside it (kept: its latest state)
    model_run: str  # TensorBoard logs and the monitor history
    serving_model: str  # the encoder (and the serving SavedModel)
    history: str  # the per-epoch history file


def outputs(cluster: Cluster, checkpoint: str, history: str, model_run: str, serving_model: str) -> Outputs:
    """The chief writes to the given paths. A non-chief writes the same things (every worker saves:
    the saves read sync-on-read variables through collectives) to its own paths: checkpoints under
    `checkpoint/../workers/<task>` (overwritten at each save, as the chief's), the rest in a local
    temporary folder that `finish` removes."""
    if cluster.is_chief:
        return Outputs(checkpoint, model_run, serving_model, history)
    scratch = tempfile.mkdtemp(prefix=f"simsiam-{cluster.name}-")
    own = os.path.join(os.path.dirname(checkpoint), WORKERS_DIR, cluster.name)
    return Outputs(
        own,
        os.path.join(scratch, "model_run"),
        os.path.join(scratch, "serving_model"),
        os.path.join(scratch, HISTORY_FILE),
    )


def finish(
    cluster: Cluster, own: Outputs, serving_model_dir: str, serving_export: bool, timeout_s: float = 3600
) -> None:
    """On a non-chief: removes its temporary folder, then returns once the chief's export exists in
    `serving_model_dir` (TFX's Trainer executor fails a replica whose `serving_model_dir` is missing
    after `run_fn`). Raises TimeoutError after `timeout_s` seconds without it. The chief: nothing."""
    if cluster.is_chief:
        return
    shutil.rmtree(os.path.dirname(own.model_run), ignore_errors=True)
    last = os.path.join(serving_model_dir, ENCODER_RECIPE)
    if serving_export:
        last = os.path.join(serving_model_dir, WARMUP_DIR, WARMUP_FILE)
    deadline = time.monotonic() + timeout_s
    while not tf.io.gfile.exists(last):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{cluster.name}: the chief's export {last} did not appear within {timeout_s:.0f} s")
        time.sleep(1.0)
    print(f"[simsiam] {cluster.name}: the chief's export is in {serving_model_dir}", flush=True)
