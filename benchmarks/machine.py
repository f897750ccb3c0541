"""What machine a benchmark ran on, for the results files."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The processor's marketing name (/proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_device(backend: str) -> tuple[str, bool]:
    """("gpu: NVIDIA H100 80GB HBM3", True) or ("cpu: <model> (2 cores)", False) for the Keras
    backend `backend` ("tensorflow" or "jax"); imports only that backend's library."""
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform != "cpu":
            return f"{device.platform}: {device.device_kind}", True
    else:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return f"gpu: {tf.config.experimental.get_device_details(gpus[0]).get('device_name', 'GPU')}", True
    return f"cpu: {cpu_model()} ({os.cpu_count()} cores)", False
