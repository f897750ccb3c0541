"""The compiled pipeline executed here, every step through the container command written in it
(kubeflow/local_executor.py, `simsiam-tfx run-compiled`), on the smoke run's data and profile."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests import background
from tests.conftest import SMOKE_PER_CLASS, flowers_sample, run_cli, unlabeled_sample

BUCKET = "simsiam-ci"
IMAGE = "registry.example.com/simsiam-tfx:ci"


@background.background_check("compiled_run")
def _compiled_run(workdir: Path) -> dict[str, Any]:
    """`compile-kubeflow --target kfp --profile smoke` with the smoke run's inputs as gs:// paths, then
    `run-compiled` with a local folder standing in for the bucket; returns its outputs and paths."""
    store = workdir / "store"
    data = store / "gs" / BUCKET / "data"
    flowers_sample(data / "flowers", SMOKE_PER_CLASS)
    unlabeled_sample(data / "unlabeled", SMOKE_PER_CLASS, 4)
    package = workdir / "simsiam.yaml"
    compiled = run_cli(
        *("compile-kubeflow", "--target", "kfp", "--output", str(package), "--image", IMAGE, "--profile", "smoke"),
        *("--pipeline-root", f"gs://{BUCKET}/root", "--serving-model-dir", f"gs://{BUCKET}/models/simsiam"),
        *("--data-dir", f"gs://{BUCKET}/data/flowers", "--unlabeled-dir", f"gs://{BUCKET}/data/unlabeled"),
        *("--beam-workers", "1"),  # the Beam steps in their own process: no worker processes to start
    )
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    result = run_cli("run-compiled", "--pipeline", str(package), "--store", str(store), timeout=1800)
    assert result.returncode == 0, f"run-compiled failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    root = (store / "gs" / BUCKET / "root").resolve()
    run_dir = Path(re.search(r"^run (\S+) finished: 14 steps", result.stdout, re.M)[1])
    assert run_dir.parent == root  # beside it: checkpoints/ and local_metadata.json
    return {"package": package, "store": store.resolve(), "root": root, "run_dir": run_dir, "stdout": result.stdout}


@pytest.fixture(scope="module")
def compiled_run() -> dict[str, Any]:
    return background.result("compiled_run")


def _outputs(run_dir: Path, task: str) -> dict[str, dict[str, Any]]:
    """A step's output artifacts as its executor_output.json (what TFX's entry point wrote) reports them."""
    reported = json.loads((run_dir / task / "executor_output.json").read_text())["artifacts"]
    return {key: value["artifacts"][0] for key, value in reported.items()}


@pytest.mark.slow
def test_every_step_of_the_package_ran_through_its_container_entry_point(compiled_run: dict[str, Any]) -> None:
    from kubeflow.local_executor import load_pipeline

    spec, root = load_pipeline(str(compiled_run["package"]))
    assert root == f"gs://{BUCKET}/root"
    executors = spec["deploymentSpec"]["executors"]
    tasks = spec["root"]["dag"]["tasks"]
    containers = {n for n, t in tasks.items() if "container" in executors[spec["components"][n]["executorLabel"]]}
    assert len(containers) == 12 and len(tasks) == 14  # + the two resolver queries
    for name in tasks:
        assert f"\n{name}: done in " in f"\n{compiled_run['stdout']}", name
    for name in containers:
        log = (compiled_run["run_dir"] / name / "log.txt").read_text()
        assert "Starting executor" in log, name  # kubeflow_v2_run_executor's own line, before executor.Do
        for key, artifact in _outputs(compiled_run["run_dir"], name).items():
            assert artifact["uri"] == str(compiled_run["run_dir"] / name / key)
            assert Path(artifact["uri"]).exists(), (name, key)
    # A first run has no blessed model yet: both resolver queries answer nothing, so no baseline.
    assert compiled_run["stdout"].count("resolved from local_metadata.json: 0 artifact(s)") == 2
    # ExampleGen's driver (lifecycle.preCacheCheck) ran before its executor, in the same log.
    log = (compiled_run["run_dir"] / "ImageExampleGen" / "log.txt").read_text()
    assert log.index("Calculated fingerprint") < log.index("Starting executor")


@pytest.mark.slow
def test_the_next_run_finds_this_runs_model_as_its_baseline(compiled_run: dict[str, Any]) -> None:
    """The compiled LatestBlessedModelStrategy queries, asked after the run: the latest blessed
    ModelBlessing is the BaselineGate's, and the Model it names is this run's probe model, so the next
    run's Evaluator compares against it (components/evaluate/baseline_gate.py keeps the name)."""
    from kubeflow.local_executor import METADATA_FILE, load_pipeline, resolve

    spec, _ = load_pipeline(str(compiled_run["package"]))
    executors = spec["deploymentSpec"]["executors"]
    known = json.loads((compiled_run["root"] / METADATA_FILE).read_text())
    blessings = executors["latest_blessed_model_resolver-model-blessing-resolver_executor"]
    models = executors["latest_blessed_model_resolver-model-resolver_executor"]
    (blessing,) = resolve(blessings, {}, known)["model_blessing"]
    assert blessing["uri"] == str(compiled_run["run_dir"] / "BaselineGate" / "blessing")
    (model,) = resolve(models, {"input": [blessing]}, known)["model"]
    assert model == _outputs(compiled_run["run_dir"], "LinearProbeTrainer")["model"] | {"type": model["type"]}


@pytest.mark.slow
def test_the_pusher_pushed_a_servable_model_to_the_compiled_destination(compiled_run: dict[str, Any]) -> None:
    pushed = _outputs(compiled_run["run_dir"], "Pusher")["pushed_model"]
    assert pushed["metadata"]["pushed"] == 1
    destination = Path(pushed["metadata"]["pushed_destination"])
    assert destination.parent == compiled_run["store"] / "gs" / BUCKET / "models" / "simsiam"
    assert destination.name.isdigit() and (destination / "saved_model.pb").is_file()  # TF Serving's layout


@pytest.mark.slow
def test_same_data_same_blessing_and_knn_within_noise_as_the_local_run(
    compiled_run: dict[str, Any], smoke_run: dict[str, Any]
) -> None:
    """The same smoke profile on the same images: the compiled run splits them identically (the split
    hashes image ids), blesses as `simsiam-tfx run` does, and its kNN accuracy differs only by run-to-run
    noise (the two runs train in different processes with different thread schedules)."""
    page = Path(_outputs(compiled_run["run_dir"], "RunReport")["report"]["uri"])  # the HTML page itself
    report = json.loads((page.parent / "report.json").read_text())  # its data, beside it
    local = smoke_run["summary"]
    assert report["blessed"] == local["blessed"] is True
    assert report["eval_metrics"]["example_count"] == local["eval_metrics"]["example_count"]
    knn, local_knn = report["simsiam_monitor"]["knn_accuracy"], local["simsiam_monitor"]["knn_accuracy"]
    assert knn == pytest.approx(local_knn, abs=0.2)
    assert report["random_init_knn_accuracy"] == pytest.approx(local["random_init_knn_accuracy"], abs=0.2)
