"""Resumable SimSiam training whose checkpoints cost a bounded share of the training time.

Keras' `BackupAndRestore` saves every epoch (or every N steps). On the `gpu` profile an epoch of
Flowers is about 20 steps and well under a second, while the training state (weights, SGD momentum,
step counter) of ResNet-18 and its heads is large: saving it after each epoch would take a large share
of the wall time (docs/gpu.md, "Checkpoints that cost little", gives its size and that share).
`IntervalCheckpoint` instead saves once when training starts (which measures what a save costs),
then at an epoch end only when the time spent saving so far, plus this save, plus one save kept in
reserve for the end, stays within `io_fraction` (5% by default) of the training time; and always
after the last epoch. So saving costs at most `io_fraction` of the training time of any run longer
than about 2 / io_fraction saves (40 at 5%; the `gpu` profile trains for minutes, a save takes a
second or two). A kill loses at most about `save_seconds / io_fraction` of training (or one epoch).

The random streams continue across a resume without being saved: the data order and the
augmentation draws of epoch e are functions of (seed, e) (`components.train.data.image_dataset`,
`SimSiamAugmentation.restart_stream`), so a run resumed at epoch e trains on what an uninterrupted
run would have seen in epoch e.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import keras
import tensorflow as tf

STATE_FILE = "checkpoint.json"


def remove_run_checkpoints(directory: str) -> bool:
    """Deletes one run's checkpoint folder (`directory`, local or a `tf.io.gfile` URL); returns whether
    there was one. Called once the Trainer has exported its model: the checkpoints exist to resume a
    killed run, and a finished run's cached outputs are reused instead, so keeping them only costs disk
    (the training state: weights plus SGD momentum, about twice the model's size)."""
    if not tf.io.gfile.exists(directory):
        return False
    tf.io.gfile.rmtree(directory)
    return True


class IntervalCheckpoint(keras.callbacks.Callback):
    """Saves the whole training state at epoch ends when the I/O budget allows; `restore` resumes.

    Args:
        directory: where the checkpoints live (local path or any `tf.io.gfile` URL, e.g. gs://);
            one directory per run (the Trainer keys it by inputs and config).
        io_fraction: the share of wall time that saving may take, in (0, 1]; 1.0 saves every epoch.
        clock: a monotonic clock in seconds (time.monotonic; injectable).
        agree: turns this process's decision to save into the one every process of a multi-worker
            run takes (`components.train.cluster.chief_decides`: the chief's); saving runs
            collectives there, so all workers must save at the same epochs. Default: the decision.

    After `fit`, `io_seconds` and `train_seconds` say what saving cost (`measured_io_fraction`).
    Raises ValueError for an io_fraction outside (0, 1].
    """

    def __init__(
        self,
        directory: str,
        io_fraction: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        agree: Callable[[bool], bool] = bool,
    ):
        super().__init__()
        if not 0 < io_fraction <= 1:
            raise ValueError(f"io_fraction must lie in (0, 1], got {io_fraction}")
        self.directory, self.io_fraction, self.clock, self.agree = directory, io_fraction, clock, agree
        self.save_seconds: float | None = None  # the cost of the latest save
        self.saved_epoch: int | None = None  # epochs completed in the latest checkpoint
        self.io_seconds = self.train_seconds = 0.0
        self.saves = 0
        self._epoch_started = 0.0
        self._completed = 0

    # --- resume --------------------------------------------------------------------------------
    def restore(self, model: keras.Model, directory: str | None = None) -> int:
        """Loads the latest checkpoint of `directory` (default: this one's; a non-chief worker restores
        the chief's) into `model` (compiled, optimizer built here if needed) and returns the number of
        completed epochs it holds (0 when there is none): pass it to `fit(initial_epoch=...)`."""
        directory = directory or self.directory
        state = self._read_state(directory)
        if state is None:
            return 0
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(os.path.join(directory, state["weights"]))
        self.saved_epoch = self._completed = int(state["epoch"])
        self.save_seconds = float(state["save_seconds"])
        return self.saved_epoch

    @staticmethod
    def _read_state(directory: str) -> dict | None:
        path = os.path.join(directory, STATE_FILE)
        if not tf.io.gfile.exists(path):
            return None
        with tf.io.gfile.GFile(path) as f:
            return json.load(f)

    # --- cadence -------------------------------------------------------------------------------
    def due(self) -> bool:
        """True when one more save now, and the final one, keep saving within `io_fraction` of the
        training time: io_seconds + 2 * save_seconds <= io_fraction * train_seconds."""
        if self.save_seconds is None:
            return True
        return self.io_seconds + 2.0 * self.save_seconds <= self.io_fraction * self.train_seconds

    def on_train_begin(self, logs=None):
        if self.save_seconds is None:  # a fresh run: one save now measures what a save costs
            self.save(self._completed)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = self.clock()

    def on_epoch_end(self, epoch, logs=None):
        elapsed = self.clock() - self._epoch_started
        self.train_seconds += elapsed
        self._completed = epoch + 1
        if self.agree(self.due()):
            self.save(self._completed)

    def on_train_end(self, logs=None):
        if self.saved_epoch != self._completed:
            self.save(self._completed)

    @property
    def measured_io_fraction(self) -> float:
        total = self.io_seconds + self.train_seconds
        return self.io_seconds / total if total else 0.0

    # --- saving --------------------------------------------------------------------------------
    def save(self, completed_epochs: int) -> None:
        """Writes the weights + optimizer state, then the state file naming them, then removes older
        weights: a kill at any moment leaves the previous checkpoint or the new one, never half."""
        start = self.clock()
        tf.io.gfile.makedirs(self.directory)
        name = f"epoch-{completed_epochs:05d}.weights.h5"
        self.model.save_weights(os.path.join(self.directory, name), overwrite=True)
        self.save_seconds = self.clock() - start
        tmp = os.path.join(self.directory, STATE_FILE + ".tmp")
        with tf.io.gfile.GFile(tmp, "w") as f:
            json.dump({"epoch": completed_epochs, "weights": name, "save_seconds": self.save_seconds}, f)
        tf.io.gfile.rename(tmp, os.path.join(self.directory, STATE_FILE), overwrite=True)
        for old in tf.io.gfile.glob(os.path.join(self.directory, "epoch-*.weights.h5")):
            if os.path.basename(old) != name:
                tf.io.gfile.remove(old)
        self.io_seconds += self.clock() - start
        self.saved_epoch, self.saves = completed_epochs, self.saves + 1
