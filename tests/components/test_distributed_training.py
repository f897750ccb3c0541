"""Several replicas done right, and the GPU configuration run on this CPU (2 logical devices).

TensorFlow fixes its devices when it starts, so each check runs in a fresh process that splits the
CPU into two logical devices first (the way TensorFlow's own multi-device tests do without GPUs).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

PRELUDE = r"""
import json, os, sys, time
START = time.time()
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from components.train.simsiam import distribution_strategy, step_jit_compile
from models.augment import SimSiamAugmentation
from models.config import SimSiamConfig, configure_precision
from models.simsiam import build_simsiam, compile_simsiam
TWO = ["/cpu:0", "/cpu:1"]
CONFIG = SimSiamConfig(image_size=16, stored_size=20, batch_size=8, epochs=1, warmup_epochs=0, width=0.125,
                       proj_dim=64, proj_hidden_dim=64, pred_hidden_dim=16, seed=0)
IMAGES = np.random.default_rng(0).integers(0, 256, (8, 20, 20, 3), dtype=np.uint8)
def fit(model, steps=1):
    data = tf.data.Dataset.from_tensors(IMAGES).repeat()
    return model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0).history
"""

SCRIPT = (
    PRELUDE
    + r"""
out = {}
# Views: both replicas get the same 4 images; each must draw its own views, namely the views a
# single device draws for its rows of the global batch of 8.
mirrored = distribution_strategy(TWO)
with mirrored.scope():
    augmentation = SimSiamAugmentation(16, seed=5)
x = tf.constant(IMAGES[:4].astype("float32") / 255.0)
views = [v.numpy() for v in mirrored.experimental_local_results(mirrored.run(augmentation, args=(x,)))]
single = SimSiamAugmentation(16, seed=5)(tf.concat([x, x], 0)).numpy()
out["between_replicas"] = float(np.abs(views[0] - views[1]).max())
out["vs_single_device"] = float(max(np.abs(views[0] - single[:4]).max(), np.abs(views[1] - single[4:]).max()))

# One step: 2 replicas with synchronised BatchNorm vs one device on the same global batch of 8.
keras.utils.set_random_seed(0)
reference = build_simsiam(CONFIG)
start = reference.get_weights()
def one_step(strategy, sync):
    with strategy.scope():
        model = build_simsiam(CONFIG, sync_batch_norm=sync)
        compile_simsiam(model, CONFIG, steps_per_epoch=1, jit_compile=False)
    model.set_weights(start)
    loss = fit(model)["loss"][0]
    return loss, model.get_weights()
loss_1, weights_1 = one_step(tf.distribute.get_strategy(), False)
loss_2, weights_2 = one_step(mirrored, True)  # one strategy per process: each new one restarts
loss_local, _ = one_step(mirrored, False)  # the collective keys, and the old one's ops would collide
out["loss_one_device"], out["loss_two_synced"], out["loss_two_local_bn"] = loss_1, loss_2, loss_local
out["weights_after_step"] = max(float(np.abs(a - b).max()) for a, b in zip(weights_1, weights_2))
out["weights_moved"] = max(float(np.abs(a - b).max()) for a, b in zip(weights_1, start))

out["seconds_replica_checks"] = round(time.time() - START)
# The GPU configuration: what the Trainer picks when it sees one GPU, and two.
import tempfile
from components.train.encoder_io import load_encoder, save_encoder
from models.monitors import embed
out["policy"] = configure_precision(True, "auto")  # what the Trainer picks when it sees a GPU
for name, strategy in (("one_gpu", distribution_strategy(["/cpu:0"])), ("two_gpus", mirrored)):
    replicas = strategy.num_replicas_in_sync
    with strategy.scope():
        model = build_simsiam(CONFIG, sync_batch_norm=replicas > 1)
        compile_simsiam(model, CONFIG, steps_per_epoch=3, jit_compile=step_jit_compile(True, replicas))
    history = fit(model, steps=3)
    folder = tempfile.mkdtemp()
    save_encoder(model.encoder, folder, {"backbone": "resnet18", "image_size": 16, "width": 0.125,
                                         "mean": [0.5] * 3, "std": [0.25] * 3})
    encoder, _ = load_encoder(folder)
    features = embed(encoder, IMAGES)
    out[name] = {"replicas": replicas, "jit_compile": model.jit_compile, "loss": history["loss"][0],
                 "compute_dtype": model.encoder.layers[-1].compute_dtype,
                 "features": list(features.shape), "finite": bool(np.isfinite(features).all())}
out["seconds_total"] = round(time.time() - START)
print("RESULT " + json.dumps(out))
"""
)


def _two_devices() -> dict:
    """One fresh process (TensorFlow start-up, one MirroredStrategy) for all the checks below."""
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
        env={"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.split("RESULT ", 1)[1])


@pytest.fixture(scope="module")
def two_devices() -> dict:
    # In the foreground: the background lane of tests/background.py ends the CI run, while the
    # foreground has time to spare (docs/development.md).
    return _two_devices()


@pytest.mark.slow
def test_replicas_draw_their_own_views_and_one_step_matches_one_device(two_devices) -> None:
    out = two_devices
    assert out["between_replicas"] > 0.05  # same images, different views on each replica
    assert out["vs_single_device"] < 1e-6  # ... exactly the single device's views of the global batch
    assert out["weights_moved"] > 1e-4
    assert abs(out["loss_two_synced"] - out["loss_one_device"]) < 1e-4
    assert out["weights_after_step"] < 1e-4  # gradients summed over replicas = the global batch's
    # Per-replica BatchNorm statistics (4 images each) change the loss: why the backbone and heads sync.
    synced_error = abs(out["loss_two_synced"] - out["loss_one_device"])
    assert abs(out["loss_two_local_bn"] - out["loss_one_device"]) > 10 * synced_error


@pytest.mark.slow
def test_the_gpu_configuration_trains_and_exports_on_two_logical_devices(two_devices) -> None:
    out = two_devices
    assert out["policy"] == "mixed_bfloat16"
    assert out["one_gpu"]["jit_compile"] is True and out["one_gpu"]["replicas"] == 1
    assert out["two_gpus"]["jit_compile"] is False and out["two_gpus"]["replicas"] == 2
    for run in (out["one_gpu"], out["two_gpus"]):
        assert run["compute_dtype"] == "bfloat16"
        assert run["finite"] and run["features"][0] == 8 and -1.0 <= run["loss"] <= 1.0
