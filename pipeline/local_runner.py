"""Running a TFX pipeline on this machine: Beam DirectRunner on every core, SQLite ML Metadata, LocalDagRunner."""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any


def beam_pipeline_args(direct_num_workers: int = 2) -> list[str]:
    """DirectRunner in worker processes (one per core): Python threads would share one core (the GIL)."""
    if direct_num_workers <= 1:
        return ["--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]
    return [
        "--runner=DirectRunner",
        "--direct_running_mode=multi_processing",
        f"--direct_num_workers={direct_num_workers}",
    ]


def metadata_connection(path: str) -> Any:
    """ML Metadata in a SQLite file (created on first use, its folder too)."""
    from tfx.orchestration import metadata

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return metadata.sqlite_metadata_connection_config(path)


def quiet_logs(verbose: bool) -> None:
    """Keeps the progress lines readable: TFX/Beam/TensorFlow chatter stays off unless `verbose`.

    Call it before TensorFlow is imported; Beam's worker processes inherit the environment variables.
    """
    from absl import logging as absl_logging

    if verbose:
        absl_logging.set_verbosity(absl_logging.INFO)
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # CUDA plugin noise at import; failures still raise
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    warnings.filterwarnings("ignore")
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    absl_logging.set_verbosity(absl_logging.ERROR)


def run_local(pipeline: Any) -> None:
    """Runs the components in order in this process; raises what a failing executor raised."""
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    LocalDagRunner().run(pipeline)


def latest_artifact_uri(metadata_path: str, component_id: str, output_key: str = "examples") -> str | None:
    """URI of `component_id`'s `output_key` artifact in the latest pipeline run (cached runs included)."""
    from pipeline.mlmd import latest_run, output_uri

    if not os.path.exists(metadata_path):
        return None
    return output_uri(latest_run(metadata_path), component_id, output_key)
