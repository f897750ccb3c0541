"""Keras callbacks: the learning rate and kNN accuracy into the epoch logs, and the per-epoch history."""

from __future__ import annotations

import math

import keras
import numpy as np

from models.augment import eval_view
from models.encoder import encoder_at_size
from models.evaluation import knn_accuracy


def embed(encoder: keras.Model, images: np.ndarray, batch_size: int = 256, chunk: int = 2048) -> np.ndarray:
    """Stored uint8 images `[N, T, T, 3]` -> encoder features float32 `[N, F]`.

    Each image goes through `augment.eval_view` (the whole image at the encoder's input size), then
    the encoder in inference mode (compiled `predict`).
    """
    images = np.asarray(images)
    size = int(encoder.input_shape[1])
    features = [
        encoder.predict(
            keras.ops.convert_to_numpy(eval_view(images[i : i + chunk], size)), batch_size=batch_size, verbose=0
        )
        for i in range(0, len(images), chunk)
    ]
    return np.concatenate(features).astype("float32")


class LearningRateLogger(keras.callbacks.Callback):
    """Logs `learning_rate`: the optimizer's scheduled rate for the next step (backbone + projector)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class KNNMonitor(keras.callbacks.Callback):
    """Every `every_n_epochs` (and after the last epoch) logs `knn_accuracy` of the model's encoder.

    The accuracy of the encoder as it was before training is kept in `initial_accuracy`
    (`evaluate_at_start`): random features already beat chance, the gain over them is what counts.
    `view_size`: the evaluation view's size in px (`SimSiamConfig.eval_size`; the training encoder's
    weights in a copy built for it, `models.encoder.encoder_at_size`); None: the encoder's input size.
    """

    def __init__(
        self,
        train_images,
        train_labels,
        eval_images,
        eval_labels,
        every_n_epochs: int = 10,
        k: int = 20,
        temperature: float = 0.1,
        batch_size: int = 256,
        evaluate_at_start: bool = True,
        view_size: int | None = None,
    ):
        super().__init__()
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        self.train_images, self.train_labels = np.asarray(train_images), np.asarray(train_labels)
        self.eval_images, self.eval_labels = np.asarray(eval_images), np.asarray(eval_labels)
        self.every_n_epochs, self.k, self.temperature = every_n_epochs, k, temperature
        self.batch_size, self.evaluate_at_start, self.view_size = batch_size, evaluate_at_start, view_size
        self.initial_accuracy: float | None = None
        self.history: dict[int, float] = {}

    def accuracy(self) -> float:
        encoder = self.model.encoder
        if self.view_size is not None:
            encoder = encoder_at_size(encoder, self.view_size)
        return knn_accuracy(
            embed(encoder, self.train_images, self.batch_size),
            self.train_labels,
            embed(encoder, self.eval_images, self.batch_size),
            self.eval_labels,
            k=self.k,
            temperature=self.temperature,
        )

    def on_train_begin(self, logs=None):
        if self.evaluate_at_start and self.initial_accuracy is None:
            self.initial_accuracy = self.accuracy()

    def on_epoch_end(self, epoch, logs=None):
        last = self.params.get("epochs") if self.params else None
        if (epoch + 1) % self.every_n_epochs == 0 or epoch + 1 == last:
            self.history[epoch + 1] = self.accuracy()
            if logs is not None:
                logs["knn_accuracy"] = self.history[epoch + 1]


class EpochHistory(keras.callbacks.Callback):
    """Keeps every epoch's logs (put it after the callbacks that add to them).

    `epochs`: `[{"epoch": i, name: value, ...}]`; `series()`: `{name: [value per epoch]}` with None
    where a monitor did not run that epoch or the value was not finite (so it stays valid JSON).
    """

    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[dict[str, float]] = []

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.epochs.append({"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}})

    def series(self) -> dict[str, list[float | None]]:
        keys = list(dict.fromkeys(k for row in self.epochs for k in row if k != "epoch"))
        return {k: [_finite_or_none(row.get(k)) for row in self.epochs] for k in keys}


def _finite_or_none(value: float | None) -> float | None:
    return round(value, 6) if value is not None and math.isfinite(value) else None
