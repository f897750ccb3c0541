"""Runs a compiled KFP v2 pipeline on this machine, every step through the container command written in it.

What a KFP v2 launcher does for each container task, done here in DAG order (the launcher's contract
is `pipeline_spec.proto`'s `ExecutorInput` and `PipelineContainerSpec`; TFX's side of it is
`tfx/orchestration/kubeflow/v2/container/kubeflow_v2_run_executor.py`):

1. build the task's `ExecutorInput`: its parameters (the compiled constants, both as the deprecated
   `parameters` Values, which TFX's entry point reads when no inputs spec is passed, and as
   `parameterValues`, as TFX's own test data has them), its input artifacts (the upstream tasks'
   output artifacts with the URI and metadata their `executor_output.json` reported), and its output
   artifacts (a fresh URI per task under the pipeline root) with `outputFile` beside them;
2. run the `lifecycle.preCacheCheck` command when there is one (ExampleGen's driver: it writes the
   span, version and fingerprint to `outputFile`, which the executor then reads back);
3. run `command + args` with the `{{$}}` placeholder replaced by that JSON, in a subprocess whose
   PYTHONPATH is the image's (`ENV PYTHONPATH` of kubeflow/Dockerfile, with the image's package folder
   mapped to this checkout);
4. read `outputFile` (`ExecutorOutput`): the output artifacts' URIs and metadata for the next tasks.

A local folder stands in for the object store: `gs://B/P`, `s3://B/P` and `minio://B/P` in the compiled
strings become `STORE/gs/B/P` (...), so the file runs unchanged. What cannot run here as compiled runs
as its in-container equivalent: Dataflow (`--runner=DataflowRunner`) as Beam's FnApiRunner inside the
step; a Vertex AI custom training job (TFX's Google Cloud Trainer) as the GenericExecutor that the job's
container would run. Resolver tasks (ML Metadata queries that Vertex AI / KFP answer themselves) are
answered from `local_metadata.json` in the pipeline root, the artifacts of earlier local runs; importer
tasks make one artifact of their compiled URI. Every step runs every time (no cache).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCHEMES = ("gs://", "s3://", "minio://")
DIRECT_RUNNER = ["--runner=FnApiRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=0"]
VERTEX_TRAINER = "tfx.extensions.google_cloud_ai_platform.trainer.executor.GenericExecutor"
TRAINER_IN_JOB = "tfx.components.trainer.executor.GenericExecutor"  # what that job's container runs
METADATA_FILE = "local_metadata.json"

Artifact = dict[str, Any]  # a RuntimeArtifact as JSON: name, type, uri, metadata


class ExecutionError(RuntimeError):
    """A step that failed or cannot run here; the message is one line meant for the user."""


@dataclass(frozen=True)
class LocalStore:
    """A folder standing in for the object stores: `gs://B/P` -> `ROOT/gs/B/P` (same for s3://, minio://)."""

    root: Path

    def localize(self, text: str) -> str:
        for scheme in SCHEMES:
            text = text.replace(scheme, f"{self.root}/{scheme[: -len('://')]}/")
        return text


def image_pythonpath(dockerfile: Path = REPO / "kubeflow" / "Dockerfile") -> list[str]:
    """The image's `ENV PYTHONPATH` entries, with the folder the image copies this repository to
    (its `WORKDIR` before the COPYs) mapped to this checkout. ExecutionError when there is none."""
    text = dockerfile.read_text()
    workdir = re.search(r"^WORKDIR (/opt/\S+)$", text, re.M)
    env = re.search(r"^ENV PYTHONPATH=(\S+)$", text, re.M)
    if not (workdir and env):
        raise ExecutionError(f"{dockerfile} sets no WORKDIR /opt/... and ENV PYTHONPATH=...")
    return [entry.replace(workdir[1], str(REPO), 1) for entry in env[1].split(":")]


def step_environment(pythonpath: list[str] | None = None) -> dict[str, str]:
    """The environment of a step: this one, with the image's PYTHONPATH (`pythonpath`, default
    `image_pythonpath()`) in front of this environment's own, which stands in for the site-packages
    where the image has this package installed."""
    paths = [*(pythonpath if pythonpath is not None else image_pythonpath()), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def load_pipeline(path: str) -> tuple[dict[str, Any], str]:
    """The PipelineSpec and pipeline root of a compiled file: a Vertex AI PipelineJob (`pipelineSpec`,
    `runtimeConfig.gcsOutputDirectory`) or a bare KFP package (a PipelineSpec with `defaultPipelineRoot`)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise ExecutionError(f"--pipeline {path}: {str(err).splitlines()[0]}") from None
    if isinstance(data, dict) and "pipelineSpec" in data:
        spec, root = data["pipelineSpec"], data.get("runtimeConfig", {}).get("gcsOutputDirectory", "")
    elif isinstance(data, dict):
        spec, root = data, data.get("defaultPipelineRoot", "")
    if not (isinstance(data, dict) and isinstance(spec, dict) and {"root", "deploymentSpec"} <= set(spec)):
        raise ExecutionError(f"--pipeline {path} is neither a Vertex AI PipelineJob nor a KFP v2 pipeline package")
    return spec, root


def task_order(tasks: Mapping[str, Any]) -> list[str]:
    """Tasks in DAG order (upstream first; ties by name): declared dependencies and artifact producers."""
    upstream = {}
    for name, task in tasks.items():
        ups = set(task.get("dependentTasks", []))
        for spec in task.get("inputs", {}).get("artifacts", {}).values():
            if "taskOutputArtifact" in spec:
                ups.add(spec["taskOutputArtifact"]["producerTask"])
        upstream[name] = ups
    order: list[str] = []
    while len(order) < len(tasks):
        ready = sorted(n for n, ups in upstream.items() if n not in order and ups <= set(order))
        if not ready:
            raise ExecutionError(f"the tasks {sorted(set(tasks) - set(order))} form a cycle")
        order.extend(ready)
    return order


def _parameters(task: Mapping[str, Any], store: LocalStore) -> tuple[dict[str, Any], dict[str, Any]]:
    """(`parameters` as pipeline_spec Values, `parameterValues` as JSON values) of one task."""
    values, plain = {}, {}
    for name, spec in task.get("inputs", {}).get("parameters", {}).items():
        constant = spec.get("runtimeValue", {}).get("constantValue")
        if constant is None:
            raise ExecutionError(f"{task['taskInfo']['name']}: parameter {name!r} is not a compiled constant")
        (kind, value), *_ = constant.items()
        if kind == "stringValue":
            value = store.localize(value)
        values[name] = {kind: value}
        plain[name] = int(value) if kind == "intValue" else value
    return values, plain


def build_executor_input(
    spec: Mapping[str, Any], name: str, inputs: Mapping[str, list[Artifact]], run_dir: Path, store: LocalStore
) -> dict[str, Any]:
    """The ExecutorInput JSON of container task `name`: its compiled parameters (localized), `inputs`,
    and one output artifact per output key at RUN_DIR/TASK/KEY, `outputFile` beside them."""
    task = spec["root"]["dag"]["tasks"][name]
    parameters, values = _parameters(task, store)
    component = spec["components"][task["componentRef"]["name"]]
    task_dir = f"{run_dir}/{name}"
    return {
        "inputs": {
            "parameters": parameters,
            "parameterValues": values,
            "artifacts": {key: {"artifacts": list(arts)} for key, arts in inputs.items()},
        },
        "outputs": {
            "artifacts": _output_artifacts(component, task_dir, f"{run_dir.name}/{name}"),
            "outputFile": f"{task_dir}/executor_output.json",
        },
    }


def _output_artifacts(component: Mapping[str, Any], task_dir: str, prefix: str) -> dict[str, Any]:
    outputs = {}
    for key, spec in component.get("outputDefinitions", {}).get("artifacts", {}).items():
        artifact = {
            "name": f"local/{prefix}/{key}",
            "type": spec["artifactType"],
            "uri": f"{task_dir}/{key}",
            "metadata": {},
        }
        outputs[key] = {"artifacts": [artifact]}
    return outputs


def container_command(container: Mapping[str, Any], executor_input: str) -> tuple[list[str], list[str]]:
    """(command, what was changed to run it here) for one compiled container spec (or lifecycle hook),
    `{{$}}` replaced by `executor_input`; ExecutionError on any other placeholder."""
    notes, args = [], list(container.get("args", []))
    if "--runner=DataflowRunner" in args:
        start = args.index("--runner=DataflowRunner")
        args = args[:start] + [a for a in args[start:] if not a.startswith("--")] + DIRECT_RUNNER
        notes.append("Dataflow -> Beam's FnApiRunner in the step")
    if VERTEX_TRAINER in args:
        args[args.index(VERTEX_TRAINER)] = TRAINER_IN_JOB
        notes.append("Vertex AI custom job -> the GenericExecutor its container runs")
    command = list(container["command"]) + args
    if command[0] == "python":
        command[0] = sys.executable  # the image's python, here this environment's
    odd = [part for part in command if "{{$" in part and part != "{{$}}"]
    if odd:
        raise ExecutionError(f"placeholder {odd[0]!r} is not one a TFX entry point uses (only {{{{$}}}})")
    return [executor_input if part == "{{$}}" else part for part in command], notes


def _last_error(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]*(Error|Exception)\b", line)]
    return (errors or lines or ["(no output)"])[-1][:400]


def _run_logged(name: str, command: list[str], env: Mapping[str, str], log: Path, cwd: Path) -> None:
    with log.open("ab") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=dict(env), cwd=cwd).returncode
    if code != 0:
        raise ExecutionError(f"step {name} failed (exit {code}): {_last_error(log)} (log: {log})")


def run_container_task(
    name: str,
    container: Mapping[str, Any],
    executor_input: dict[str, Any],
    env: Mapping[str, str],
) -> tuple[dict[str, list[Artifact]], list[str]]:
    """Runs one container task as the launcher would; returns its output artifacts (as its
    `executor_output.json` reports them) and what was changed to run it here."""
    output_file = Path(executor_input["outputs"]["outputFile"])
    task_dir = output_file.parent
    task_dir.mkdir(parents=True, exist_ok=True)
    log = task_dir / "log.txt"
    payload = json.dumps(executor_input)
    hook = container.get("lifecycle", {}).get("preCacheCheck")
    if hook:
        command, _ = container_command(hook, payload)
        _run_logged(f"{name} (driver)", command, env, log, task_dir)
    command, notes = container_command(container, payload)
    _run_logged(name, command, env, log, task_dir)
    if not output_file.is_file():
        raise ExecutionError(f"step {name} wrote no {output_file.name} (log: {log})")
    reported = json.loads(output_file.read_text()).get("artifacts", {})
    outputs = {}
    for key, spec in executor_input["outputs"]["artifacts"].items():
        (artifact,) = spec["artifacts"]
        update = (reported.get(key, {}).get("artifacts") or [{}])[0]
        outputs[key] = [{**artifact, **{k: update[k] for k in ("uri", "metadata", "name") if k in update}}]
    return outputs, notes


def _schema_title(artifact: Artifact) -> str:
    import yaml

    kind = artifact["type"]
    return kind.get("schemaTitle") or yaml.safe_load(kind["instanceSchema"])["title"]


def _matches(artifact: Artifact, clause: str) -> bool:
    """One clause of a KFP resolver filter (ML Metadata's filter syntax, the forms TFX compiles)."""
    if clause == "state=LIVE":
        return True
    if m := re.fullmatch(r'schema_title="([^"]+)"', clause):
        return _schema_title(artifact) == m[1]
    if m := re.fullmatch(r'name="([^"]*)"', clause):
        return artifact["name"] == m[1]
    if m := re.fullmatch(r"metadata\.(\w+)\.number_value=(-?[\d.]+)", clause):
        return artifact["metadata"].get(m[1]) == float(m[2])
    raise ExecutionError(f"resolver filter clause {clause!r} is not one this local executor answers")


def resolve(
    executor: Mapping[str, Any], inputs: Mapping[str, list[Artifact]], known: list[Artifact]
) -> dict[str, list[Artifact]]:
    """A resolver task: for each output, the latest of the `known` artifacts its filter selects
    (TFX compiles `LatestBlessedModelStrategy` into two such queries); none when its input is empty."""
    outputs = {}
    for key, query in executor["resolver"]["outputArtifactQueries"].items():
        text, empty = query["filter"], False
        for m in re.finditer(r"\{\{\$\.inputs\.artifacts\['(\w+)'\]\.metadata\['(\w+)'\]\}\}", query["filter"]):
            found = [a["metadata"].get(m[2]) for a in inputs.get(m[1], [])]
            empty = empty or not found or found[0] is None
            text = text.replace(m[0], str(found[0]) if found and found[0] is not None else "")
        chosen = [] if empty else [a for a in known if all(_matches(a, c) for c in text.split(" AND "))]
        outputs[key] = chosen[-1:]
    return outputs


def _import(executor: Mapping[str, Any], component: Mapping[str, Any], store: LocalStore) -> dict[str, list[Artifact]]:
    """An importer task: one artifact at its compiled constant URI (`constantValue` or `constant`),
    under the component's one output key."""
    spec, source = executor["importer"], executor["importer"]["artifactUri"]
    uri = source.get("constantValue", {}).get("stringValue", source.get("constant"))
    if not isinstance(uri, str):
        raise ExecutionError("importer: only a compiled constant artifact URI runs here, not a runtime parameter")
    (key,) = component["outputDefinitions"]["artifacts"]
    artifact = {"name": f"local/import/{uuid.uuid4().hex}", "type": spec["typeSchema"], "uri": store.localize(uri)}
    return {key: [{**artifact, "metadata": spec.get("metadata", {})}]}


@dataclass
class RunResult:
    """What a local run of a compiled pipeline did: where, each task's outputs, seconds and notes."""

    pipeline_root: Path
    run_dir: Path
    outputs: dict[str, dict[str, list[Artifact]]]
    seconds: dict[str, float]
    notes: dict[str, list[str]]


def _inputs(task: Mapping[str, Any], done: Mapping[str, dict[str, list[Artifact]]]) -> dict[str, list[Artifact]]:
    inputs = {}
    for key, spec in task.get("inputs", {}).get("artifacts", {}).items():
        if "taskOutputArtifact" not in spec:
            raise ExecutionError(f"{task['taskInfo']['name']}: input {key!r} comes from no task")
        ref = spec["taskOutputArtifact"]
        inputs[key] = done[ref["producerTask"]][ref["outputArtifactKey"]]
    return inputs


def run_pipeline(
    pipeline: str,
    store: Path,
    pythonpath: list[str] | None = None,
    on_step: Callable[[str, float, list[str]], None] | None = None,
) -> RunResult:
    """Runs every task of the compiled file at `pipeline` in DAG order; `store` stands in for the
    object store. `pythonpath`: the image's (default: kubeflow/Dockerfile's, `image_pythonpath`).
    Raises ExecutionError (one line) on the first step that fails."""
    spec, root = load_pipeline(pipeline)
    local = LocalStore(Path(store).resolve())
    if not root.startswith(SCHEMES):
        raise ExecutionError(f"the pipeline root {root!r} is not under {', '.join(SCHEMES)}")
    pipeline_root = Path(local.localize(root))
    run_id = f"{spec['pipelineInfo']['name']}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    run_dir = pipeline_root / run_id
    env = step_environment(pythonpath)
    metadata_file = pipeline_root / METADATA_FILE
    known = json.loads(metadata_file.read_text()) if metadata_file.is_file() else []
    tasks, executors = spec["root"]["dag"]["tasks"], spec["deploymentSpec"]["executors"]
    result = RunResult(pipeline_root, run_dir, {}, {}, {})
    for name in task_order(tasks):
        started = time.monotonic()
        task = tasks[name]
        component = spec["components"][task["componentRef"]["name"]]
        executor = executors[component["executorLabel"]]
        inputs = _inputs(task, result.outputs)
        notes: list[str] = []
        if "resolver" in executor:
            outputs = resolve(executor, inputs, known)
            notes.append(f"resolved from {METADATA_FILE}: {sum(map(len, outputs.values()))} artifact(s)")
        elif "importer" in executor:
            outputs = _import(executor, component, local)
        elif "container" in executor:
            executor_input = build_executor_input(spec, name, inputs, run_dir, local)
            outputs, notes = run_container_task(name, executor["container"], executor_input, env)
            known.extend(a for arts in outputs.values() for a in arts)
            metadata_file.write_text(json.dumps(known, indent=1))
        else:
            raise ExecutionError(f"task {name}: executor kind {sorted(executor)} does not run here")
        result.outputs[name], result.notes[name] = outputs, notes
        result.seconds[name] = time.monotonic() - started
        if on_step:
            on_step(name, result.seconds[name], notes)
    return result
