"""Running a TFX pipeline on this machine: Beam's FnApiRunner (in this process, or in worker processes), SQLite
ML Metadata, LocalDagRunner."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from typing import Any

# Named, not Beam's default DirectRunner: in Beam 2.74 that one first tries PrismRunner, a Go binary it
# downloads from GitHub, and falls back to this runner when it cannot (offline: a failed download per
# Beam pipeline). So a laptop online would run another runner than CI does; this runs the same one
# everywhere, with the same direct-running options (`apache_beam.runners.direct.direct_runner`).
LOCAL_BEAM_RUNNER = "FnApiRunner"
# The run folder's summary (`run_and_summarise`), which `simsiam-tfx report` reads back.
SUMMARY_FILE = "summary.json"


# The environment variables that carry the Beam worker settings to the Beam steps while `run_local` runs.
BEAM_WORKERS_ENV = "SIMSIAM_TFX_BEAM_WORKERS"
BEAM_RUNNING_MODE_ENV = "SIMSIAM_TFX_BEAM_RUNNING_MODE"


def beam_pipeline_args() -> list[Any]:
    """Beam's FnApiRunner, its worker count filled in by `run_local`: the command's own process for 1 (the
    default of `run` and `ingest`), else that many worker processes (not threads: they would share
    one core, the GIL).

    The worker count and running mode are TFX environment-variable placeholders, resolved when a Beam
    step starts from the variables `run_local` sets for the run, not literal arguments: TFX hashes a
    Beam step's arguments into its cache key, so `--workers 1` after a run with 2 would re-run
    ingestion and, with new examples, every step after it: the Trainers would re-train and the Pusher
    push a model no different in kind. How many processes run Beam does not change what the steps
    produce. So a pipeline built with these arguments runs through `run_local` only (elsewhere the
    placeholders resolve to nothing and Beam fails on its flags); Dataflow and Kubeflow get literal
    arguments of their own (kubeflow/runner.py).

    With no dependency flag, every TFX Beam executor first builds an sdist of TFX itself for the workers
    (`tfx.utils.dependency_utils.make_beam_dependency_flags`), a `setup.py sdist` subprocess per step
    that only a remote runner could use: the FnApiRunner's workers run in this environment and stage
    nothing. Naming this project's own `setup.py` (when it exists, as in a clone) skips that build."""
    from tfx.dsl.placeholder.placeholder import environment_variable

    args: list[Any] = [
        f"--runner={LOCAL_BEAM_RUNNER}",
        "--direct_running_mode=" + environment_variable(BEAM_RUNNING_MODE_ENV),
        "--direct_num_workers=" + environment_variable(BEAM_WORKERS_ENV),
    ]
    setup_file = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")
    return args + ([f"--setup_file={setup_file}"] if os.path.isfile(setup_file) else [])


def direct_running(workers: int) -> tuple[str, int]:
    """(`--direct_running_mode`, `--direct_num_workers`) of the FnApiRunner for `workers` worker
    processes: 1 runs Beam in the calling process (`in_memory`: no worker process importing TensorFlow,
    no images through a pipe), anything else in worker processes (`multi_processing`; 0 is one per core).
    Local runs (`beam_workers`) and the compiled pipeline's steps (kubeflow/runner.py) share it."""
    return ("in_memory", 1) if workers == 1 else ("multi_processing", workers)


@contextlib.contextmanager
def beam_workers(count: int) -> Iterator[None]:
    """The Beam worker settings `beam_pipeline_args` leaves to run time (`direct_running`), set for the
    `with` block and restored after it: `count` worker processes, or Beam in this process for 1 or fewer."""
    mode, workers = direct_running(max(count, 1))
    values = {BEAM_WORKERS_ENV: str(workers), BEAM_RUNNING_MODE_ENV: mode}
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_folder_paths(out: str) -> tuple[str, str]:
    """(ML Metadata's SQLite file, TFX's pipeline root) in the run folder `out` of `run` and `ingest`."""
    from components.ingest.files import METADATA_FILE, PIPELINE_ROOT_DIR

    return os.path.join(out, METADATA_FILE), os.path.join(out, PIPELINE_ROOT_DIR)


def metadata_connection(path: str) -> Any:
    """ML Metadata in a SQLite file (created on first use, its folder too)."""
    from tfx.orchestration import metadata

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return metadata.sqlite_metadata_connection_config(path)


def quiet_native_logs(verbose: bool) -> None:
    """Silences TensorFlow's and XLA's C++ log lines before TensorFlow is first imported, unless `verbose`.

    At import TensorFlow prints lines that look like errors but are not (XLA's "Unable to register
    cuDNN/cuFFT/cuBLAS factory", "Could not find cuda drivers", oneDNN notes): they are the C++ log at
    levels INFO to ERROR, which TF_CPP_MIN_LOG_LEVEL=3 turns off (a value the user set is kept). Real
    errors are not hidden: a failing TensorFlow op raises a Python exception carrying its message, and
    each command prints it (`error: ...`) or its traceback; `--verbose` (run, ingest) shows every log.
    Beam's worker processes inherit the variable."""
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def quiet_logs(verbose: bool) -> None:
    """Keeps the progress lines readable: TFX/Beam/TensorFlow chatter stays off unless `verbose`.

    Call it before TensorFlow is imported; Beam's worker processes inherit the environment variables.
    """
    from absl import logging as absl_logging

    if verbose:
        absl_logging.set_verbosity(absl_logging.INFO)
        return
    quiet_native_logs(verbose)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    warnings.filterwarnings("ignore")
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    absl_logging.set_verbosity(absl_logging.ERROR)


def run_local(pipeline: Any, workers: int = 2) -> None:
    """Runs the components in order in this process, the Beam steps on `workers` Beam worker processes
    (`beam_workers`); raises what a failing executor raised."""
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    with beam_workers(workers):
        LocalDagRunner().run(pipeline)


def latest_artifact_uri(metadata_path: str, component_id: str, output_key: str = "examples") -> str | None:
    """URI of `component_id`'s `output_key` artifact in the latest pipeline run (cached runs included)."""
    from pipeline.mlmd import latest_run, output_uri

    if not os.path.exists(metadata_path):
        return None
    return output_uri(latest_run(metadata_path), component_id, output_key)


def run_and_summarise(
    image_input: Any,
    config: Any,
    out: str,
    pipeline_name: str = "simsiam-tfx",
    workers: int = 2,
    enable_cache: bool = True,
    plots: bool = True,
    schema_path: str | None = None,
) -> dict[str, Any]:
    """`create_pipeline` for `image_input` (components/ingest/inputs.py) and `config` (a RunConfig), run
    with LocalDagRunner into the run folder `out` (SQLite ML Metadata `out/metadata.sqlite`, artifacts
    under `out/pipeline_root`, pushed models under `out/serving`; `schema_path`: a curated schema the
    ExampleValidator checks the data against), with a line per component as it starts and ends. Then
    writes `out/summary.json` (pipeline/summary.py; written whole or not at all) and, when every step
    ran, copies the RunReport's figures and `out/report.html`. Returns the summary; a step that raised is
    recorded under "error" (the run's other figures are still summarised), not re-raised; an OSError
    writing summary.json under "write_error" (one line: the run's results are on the console still).
    """
    import json

    from pipeline.memory import children_peak_rss_mb, own_peak_rss_mb, seconds_since_process_start
    from pipeline.mlmd import latest_run
    from pipeline.pipeline import create_pipeline
    from pipeline.progress import ComponentProgress
    from pipeline.summary import build_summary, copy_figures, write_report
    from serving.atomic import write_text_atomic

    metadata_path, pipeline_root = run_folder_paths(out)
    pipeline = create_pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        config=config,
        serving_model_dir=os.path.join(out, "serving"),
        image_input=image_input,
        metadata_connection_config=metadata_connection(metadata_path),
        beam_pipeline_args=beam_pipeline_args(),
        enable_cache=enable_cache,
        schema_path=schema_path,
    )
    failure = None
    with ComponentProgress(metadata_path):
        try:
            run_local(pipeline, workers)
        except Exception as err:  # summarise what ran, then report the failure
            failure = err
    executions = latest_run(metadata_path)
    # Peak memory of this process and of its (Beam worker) children, whichever is larger.
    peak_mb = max(own_peak_rss_mb(), children_peak_rss_mb())
    # From process start: the ~half-minute of imports before the first step is part of what the user waits.
    summary = build_summary(executions, peak_mb, seconds_since_process_start(), config.to_dict())
    if failure is not None:
        summary["error"] = f"{type(failure).__name__}: {failure}"
    if failure is None and plots:
        summary["plots"] = copy_figures(executions, out)
    summary["report"] = write_report(executions, summary, out) if failure is None else None
    path = os.path.join(out, SUMMARY_FILE)
    try:
        write_text_atomic(path, json.dumps(summary, indent=2, default=str))
    except OSError as err:  # a full disk, a folder in its place: the previous file, if any, is still whole
        summary["write_error"] = f"cannot write {path}: {err.strerror or err}; the previous file, if any, is unchanged"
    return summary
