"""Run the model tests on the other Keras backend, and the TensorFlow-only MirroredStrategy check.

Keras picks its backend once per process, so the backend-generic test files run here in a
subprocess with KERAS_BACKEND set; the backend this pytest process already uses is covered by
running those files directly. The slow training tests (test_models_training.py) run on JAX in
`make jax-check` (the GPU pack's Keras) and, end to end, in tests/benchmarks/test_gpu_pack.py: here
they would add three minutes to CI for what those already show.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import pytest

from tests import background

REPO = Path(__file__).resolve().parents[2]
FAST_FILES = [
    "tests/models/test_models_layers.py",
    "tests/models/test_models_loss.py",
    "tests/models/test_models_augment.py",
    "tests/models/test_models_simsiam.py",
]


def _run(args: list[str], backend: str, timeout: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


OTHER_BACKEND = "jax" if keras.backend.backend() == "tensorflow" else "tensorflow"


@background.background_check("other_backend_run")
def _other_backend_run(workdir) -> subprocess.CompletedProcess:
    """FAST_FILES' tests (not slow) in a subprocess on the backend this process does not use."""
    return _run(
        ["-m", "pytest", *FAST_FILES, "-q", "-x", "-p", "no:cacheprovider", "-m", "not slow"],
        OTHER_BACKEND,
        timeout=900,
    )


@pytest.fixture(scope="module")
def other_backend_run() -> subprocess.CompletedProcess:
    return background.result("other_backend_run")


def test_model_tests_pass_on_the_other_backend(other_backend_run):
    result = other_backend_run
    assert result.returncode == 0, f"{OTHER_BACKEND}: {result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    assert " passed" in result.stdout and " failed" not in result.stdout


MIRRORED_SCRIPT = textwrap.dedent("""
    import numpy as np, tensorflow as tf, keras
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from models.config import SimSiamConfig
    from models.optimizer import SimSiamSGD
    from models.simsiam import build_simsiam, compile_simsiam

    fixed_names, scheduled_names = set(), set()
    update_step = SimSiamSGD.update_step
    def recording_update_step(self, gradient, variable, learning_rate):
        fixed = self._var_key(variable) in self._fixed_keys  # runs at trace time, once per variable
        (fixed_names if fixed else scheduled_names).add(variable.name.split(":")[0].split("/replica")[0])
        return update_step(self, gradient, variable, learning_rate)
    SimSiamSGD.update_step = recording_update_step

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    config = SimSiamConfig(image_size=16, width=0.125, batch_size=8, epochs=1, warmup_epochs=1,
                           proj_dim=32, proj_hidden_dim=32, pred_hidden_dim=8)
    with strategy.scope():
        model = compile_simsiam(build_simsiam(config), config, steps_per_epoch=2)
    images = np.random.default_rng(0).integers(0, 256, (16, 16, 16, 3), dtype=np.uint8)
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(8)
    history = model.fit(dataset, epochs=1, verbose=0)
    assert strategy.num_replicas_in_sync == 2
    assert np.isfinite(history.history["loss"][0]) and history.history["collapse_std"][0] > 0
    predictor = {v.value.name.split(":")[0] for v in model.predictor.trainable_variables}
    assert len(predictor) == 5 and fixed_names == predictor, (fixed_names, predictor)
    assert len(scheduled_names) == len(model.trainable_variables) - 5
    print("MIRRORED_OK")
""")


def test_fit_under_mirrored_strategy_with_two_replicas_keeps_the_predictor_rate_fixed():
    result = _run(["-c", MIRRORED_SCRIPT], "tensorflow", timeout=600)
    assert "MIRRORED_OK" in result.stdout, f"{result.stdout[-3000:]}\n{result.stderr[-4000:]}"
