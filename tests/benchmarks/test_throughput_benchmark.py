"""The throughput benchmark command: one JSON line on stdout and in the results file (no timing asserts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


# TensorFlow only in CI: the JAX run took 51 s here (its jit compile), and the JAX training step runs
# end to end in tests/benchmarks/test_gpu_pack.py (the quality benchmark on JAX). `--backend jax` works
# the same way: `python -m benchmarks.throughput --backend jax ...`.
@pytest.mark.parametrize("backend", ["tensorflow"])
def test_throughput_command_prints_and_writes_one_json_line(backend, tmp_path):
    args = [
        "--backend",
        backend,
        "--backbone",
        "resnet18",
        "--image-size",
        "16",
        "--batch-size",
        "4",
        "--width",
        "0.125",
        "--steps",
        "2",
        "--warmup-steps",
        "1",
        "--output-dir",
        str(tmp_path),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("KERAS_BACKEND", None)
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.throughput", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["backend"] == backend and record["backbone"] == "resnet18"
    assert (record["image_size"], record["batch_size"], record["steps"]) == (16, 4, 2)
    assert record["small_stem"] is True and record["device"].startswith("cpu:")
    assert record["views_per_s"] > 0
    assert record["views_per_s"] == pytest.approx(2 * 4 * 2 / record["seconds"], rel=0.01)
    assert record["jit_compile"] is (backend == "jax")
    written = tmp_path / f"throughput-{backend}-resnet18-16-float32.json"
    assert json.loads(written.read_text()) == record


def test_throughput_command_rejects_bad_arguments():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.throughput", "--backend", "torch"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_a_failing_pytorch_reference_stops_with_its_command(tmp_path):
    """`--torch-python` runs benchmarks/torch_reference.py in that interpreter; when it fails, the
    command says which one and exits non-zero instead of writing a half result."""
    args = [
        "--backend",
        "tensorflow",
        "--image-size",
        "16",
        "--batch-size",
        "4",
        "--steps",
        "2",
        "--warmup-steps",
        "1",
        "--torch-python",
        sys.executable,
        "--output-dir",
        str(tmp_path),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.throughput", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    # This interpreter has no torch: the reference fails, and the message names the script.
    assert result.returncode != 0
    assert "the PyTorch reference failed" in result.stderr and "torch_reference.py" in result.stderr
    assert not list(tmp_path.glob("*.json"))
