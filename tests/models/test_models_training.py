"""Short SimSiam runs on structured synthetic images: learning beats random init; no stop-gradient collapses.

The images: 8 classes, each one random 4x4 colour layout (upsampled to 16 px); every image is its
class prototype under a random SimSiam augmentation (crop, flip, colour jitter, grayscale, blur).
Random-init features are thrown off by those nuisances, and SimSiam learns invariance to exactly
them, so kNN accuracy on held-out images rises within a few hundred steps.

The learning test must pass by a wide margin on any x86 CPU, where float rounding differs: at 160
steps and 256 eval images the gain over random init was +4 to +7 points against a +5 threshold
(it failed a fresh clone's CI). It now trains 640 steps and scores 512 eval images; the gain over
five seeds is in docs/development.md ("The learning tests"), with the command that measures it.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from models.augment import SimSiamAugmentation
from models.config import SimSiamConfig
from models.monitors import KNNMonitor
from models.simsiam import build_simsiam, compile_simsiam

SIZE, CLASSES, BATCH = 16, 8, 64


def synthetic_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    prototypes = np.random.default_rng(1234).uniform(size=(CLASSES, 4, 4, 3)).astype("float32")
    prototypes = prototypes.repeat(SIZE // 4, axis=1).repeat(SIZE // 4, axis=2)
    labels = np.arange(n) % CLASSES
    nuisance = SimSiamAugmentation(SIZE, seed=seed)
    images = keras.ops.convert_to_numpy(nuisance(prototypes[labels]))
    return (images * 255).round().astype("uint8"), labels


def run(stop_gradient: bool, steps: int, base_lr: float, seed: int = 0) -> tuple[keras.callbacks.History, KNNMonitor]:
    """Trains `steps` SGD steps (cosine schedule over them) on 1,024 synthetic images; kNN (k = 10) on
    512 held-out ones at random init, half-way and at the end. `seed`: model init and augmentations."""
    train_x, train_y = synthetic_images(1024, seed=1)
    eval_x, eval_y = synthetic_images(512, seed=2)
    steps_per_epoch = len(train_x) // BATCH
    epochs = steps // steps_per_epoch
    config = SimSiamConfig(
        image_size=SIZE,
        width=0.125,
        batch_size=BATCH,
        epochs=epochs,
        warmup_epochs=0,
        base_lr=base_lr,
        proj_dim=256,
        proj_hidden_dim=256,
        pred_hidden_dim=64,
        stop_gradient=stop_gradient,
        seed=seed,
    )
    keras.utils.set_random_seed(seed)
    model = compile_simsiam(build_simsiam(config), config, steps_per_epoch)
    monitor = KNNMonitor(train_x, train_y, eval_x, eval_y, every_n_epochs=max(1, epochs // 2), k=10)
    history = model.fit(train_x, batch_size=BATCH, epochs=epochs, verbose=0, callbacks=[monitor])
    return history, monitor


@pytest.mark.slow
def test_training_raises_knn_accuracy_above_random_init():
    history, monitor = run(stop_gradient=True, steps=640, base_lr=0.15)
    final = history.history["knn_accuracy"][-1]
    # Five seeds gained +0.18 to +0.39 here (docs/development.md): the threshold is 0.27 of the smallest.
    assert final >= monitor.initial_accuracy + 0.05, (monitor.initial_accuracy, monitor.history)
    assert history.history["loss"][-1] < history.history["loss"][0] - 0.2
    assert min(history.history["collapse_std"]) > 0.8  # healthy: no collapse with stop-gradient


@pytest.mark.slow
def test_without_stop_gradient_the_representation_collapses():
    history, monitor = run(stop_gradient=False, steps=160, base_lr=0.2)
    loss, std = history.history["loss"], history.history["collapse_std"]
    assert loss[-1] < -0.9, loss  # the trivial solution: both branches agree at once
    assert std[-1] < 0.5 * std[0], std  # and the outputs lose their spread
    assert history.history["knn_accuracy"][-1] <= monitor.initial_accuracy + 0.02
