"""Multi-worker training for real: two processes on loopback, each the TFX Trainer executor that Vertex
AI runs on every replica, with its own `TF_CONFIG`; one of them SIGKILLed mid-run, both restarted.

The inputs are what Transform hands the Trainer (its features and schema, random stored images),
the train split in two unequal files, so the workers shard by file and count their shards. The executor's
`run_fn` is the SimSiam Trainer's own, wrapped (`run_fn` below) only to record which training
images this worker parsed: the `tf.data` map that parses them also notes each one's digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from components.train.checkpoint import IntervalCheckpoint
from components.train.cluster import Cluster, shard, shard_files
from tests import background
from tests.conftest import REPO
from tests.fakes.transformed import write_transformed_file

EPOCHS, TRAIN_FILES, EVAL_IMAGES, STORED = 4, (24, 16), 16, 20
RECORD_DIR_ENV = "SIMSIAM_TEST_RECORD_DIR"
RUN_LIMIT_S = 240  # each launch of the two workers; then both process groups are SIGKILLed


def run_fn(fn_args) -> None:
    """`components.train.simsiam.run_fn`, recording the digest of every training image this worker
    parses (the `image_u8` bytes) into `$SIMSIAM_TEST_RECORD_DIR/<task>.json` when it returns."""
    import tensorflow as tf

    from components.train import data, simsiam

    seen: set[str] = set()
    parse = data._image

    def recording(serialized, image_size):
        one = tf.reshape(serialized, [])
        note = tf.py_function(lambda s: seen.add(hashlib.sha256(s.numpy()).hexdigest()) or 0, [one], tf.int64)
        with tf.control_dependencies([note]):
            return parse(serialized, image_size)

    data._image = recording
    simsiam.run_fn(fn_args)
    task = Cluster.from_environment().name
    Path(os.environ[RECORD_DIR_ENV], f"{task}.json").write_text(json.dumps(sorted(seen)))


def build_inputs(root: str) -> None:
    """Writes under `root` what the Transform step hands the Trainer, for random stored images (the
    features and schema of components/transform.py: `image_u8` a serialized uint8 `[STORED, STORED, 3]`
    tensor, `label`, `class_name`, `image_id`, the pixel statistics): train in two GZIP files of TRAIN_FILES
    images, eval in one, and the transformed schema; then the Trainer executor's
    `--inputs/--outputs/--exec-properties` JSON (`executor_args.json`) and the digests of the train
    images (`train_digests.json`)."""
    import tensorflow as tf
    from google.protobuf import json_format
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils
    from tfx import v1 as tfx
    from tfx.types import artifact_utils, standard_artifacts

    from components import features as F
    from components.train.trainer_config import SimSiamTrainerConfig
    from models.config import SimSiamConfig

    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (sum(TRAIN_FILES), STORED, STORED, 3), dtype=np.uint8)
    evaluation = rng.integers(0, 256, (EVAL_IMAGES, STORED, STORED, 3), dtype=np.uint8)
    pixels = train.reshape(-1, 3) / 255.0
    stats = {F.PIXEL_MEAN: pixels.mean(0), F.PIXEL_STD: pixels.std(0)}
    spec = {
        F.IMAGE_U8: tf.io.FixedLenFeature([], tf.string),
        F.LABEL: tf.io.FixedLenFeature([], tf.int64),
        F.CLASS_NAME: tf.io.FixedLenFeature([], tf.string),
        F.IMAGE_ID: tf.io.FixedLenFeature([], tf.string),
        F.PIXEL_MEAN: tf.io.FixedLenFeature([3], tf.float32),
        F.PIXEL_STD: tf.io.FixedLenFeature([3], tf.float32),
    }
    schema = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    metadata_io.write_metadata(schema, os.path.join(root, "transform_graph", "transformed_metadata"))

    parts = {"train": np.split(train, [TRAIN_FILES[0]]), "eval": [evaluation]}
    for split, files in parts.items():
        for i, images in enumerate(files):
            name = f"transformed_examples-{i:05d}-of-{len(files):05d}.gz"
            labels = [j % 2 for j in range(len(images))]
            write_transformed_file(
                os.path.join(root, "examples", f"Split-{split}", name), images,
                image_ids=[f"{split}/{i}/{j}.jpg" for j in range(len(images))], labels=labels,
                class_names=["ab"[label] for label in labels], floats=stats,
            )  # fmt: skip
    digests = sorted(hashlib.sha256(tf.io.serialize_tensor(image).numpy()).hexdigest() for image in train)
    Path(root, "train_digests.json").write_text(json.dumps(digests))

    def artifact(kind, name: str, **properties):
        a = kind()
        a.uri = os.path.join(root, name)
        for key, value in properties.items():
            setattr(a, key, value)
        return [a]

    simsiam = SimSiamConfig(
        image_size=16, stored_size=STORED, batch_size=8, epochs=EPOCHS, warmup_epochs=0, width=0.125,
        proj_dim=64, proj_hidden_dim=64, pred_hidden_dim=16, seed=0,
    )  # fmt: skip
    settings = SimSiamTrainerConfig(
        simsiam=simsiam, checkpoint_root=os.path.join(root, "checkpoints"), knn_every=2, collapse_threshold=0.0,
        precision="fp32", checkpoint_io_fraction=1.0, export_serving_model=False, sample_size=100,
        shuffle_buffer=64, cache_images=False,
        keep_checkpoints=True,  # the tests below read the final checkpoints of both workers
    )  # fmt: skip
    examples = artifact(standard_artifacts.Examples, "examples", split_names='["train", "eval"]')
    args = {
        "inputs": artifact_utils.jsonify_artifact_dict(
            {"examples": examples, "transform_graph": artifact(standard_artifacts.TransformGraph, "transform_graph")}
        ),
        "outputs": artifact_utils.jsonify_artifact_dict(
            {
                "model": artifact(standard_artifacts.Model, "model"),
                "model_run": artifact(standard_artifacts.ModelRun, "model_run"),
            }
        ),
        "exec-properties": json.dumps(
            {
                "run_fn": f"{__name__}.run_fn",
                "train_args": json_format.MessageToJson(tfx.proto.TrainArgs(splits=["train"], num_steps=0)),
                "eval_args": json_format.MessageToJson(tfx.proto.EvalArgs(splits=["eval"], num_steps=0)),
                "custom_config": json.dumps(settings.to_custom_config()),
            }
        ),
    }
    Path(root, "executor_args.json").write_text(json.dumps(args))


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start(root: Path, log: str) -> dict[str, subprocess.Popen]:
    """Both workers, each `python -m tfx.scripts.run_executor ... GenericExecutor` with its TF_CONFIG."""
    args = json.loads((root / "executor_args.json").read_text())
    chief, worker = (f"localhost:{p}" for p in _free_ports(2))
    spec = {"chief": [chief], "worker": [worker]}
    command = [sys.executable, "-m", "tfx.scripts.run_executor"]
    command += ["--executor_class_path", "tfx.components.trainer.executor.GenericExecutor"]
    for key in ("inputs", "outputs", "exec-properties"):
        command += [f"--{key}", args[key]]
    procs = {}
    for task in ("chief", "worker"):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2",
            "TMPDIR": str(root / "tmp"), RECORD_DIR_ENV: str(root / "records"),
            "TF_CONFIG": json.dumps({"cluster": spec, "task": {"type": task, "index": 0}}),
        }  # fmt: skip
        out = open(root / f"{log}-{task}.log", "w")  # noqa: SIM115 - closed with the process below
        procs[task] = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return procs


def _kill(procs: dict[str, subprocess.Popen]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _wait(procs: dict[str, subprocess.Popen], deadline: float) -> dict[str, int | None]:
    """Return codes once both exit, None for one still running at `deadline` (then both are killed)."""
    while time.monotonic() < deadline and any(p.poll() is None for p in procs.values()):
        time.sleep(0.2)
    codes = {task: p.poll() for task, p in procs.items()}
    _kill(procs)
    return codes


def _chief_state(root: Path) -> dict | None:
    states = list((root / "checkpoints").glob("*/state/checkpoint.json"))
    return json.loads(states[0].read_text()) if states else None


def _weights(path: Path) -> tuple[str, int]:
    """(digest of every array in a Keras weights file, the optimizer's step counter)."""
    import h5py

    digest, arrays = hashlib.sha256(), {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, item: arrays.update({name: np.asarray(item)}) if isinstance(item, h5py.Dataset) else None
        )
    for name in sorted(arrays):
        digest.update(name.encode() + arrays[name].tobytes())
    return digest.hexdigest(), int(arrays["optimizer/vars/0"])


@background.background_check("two_workers")
def _two_workers(workdir: Path) -> dict:
    """Builds the inputs, starts the cluster, SIGKILLs the worker after the first checkpoint past the
    start, kills the chief (blocked in a collective), restarts both and lets them finish."""
    start = time.monotonic()
    (workdir / "tmp").mkdir()
    (workdir / "records").mkdir()
    build = f"from {__name__} import {build_inputs.__name__} as build; build({str(workdir)!r})"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    built = subprocess.run(
        [sys.executable, "-c", build], capture_output=True, text=True, cwd=REPO, env=env, timeout=300
    )
    assert built.returncode == 0, built.stderr[-4000:]
    seconds = {"inputs": time.monotonic() - start}

    first = _start(workdir, "first")
    deadline = time.monotonic() + RUN_LIMIT_S
    while time.monotonic() < deadline and (_chief_state(workdir) or {"epoch": 0})["epoch"] < 1:
        if any(p.poll() is not None for p in first.values()):
            break
        time.sleep(0.1)
    killed_after = (_chief_state(workdir) or {}).get("epoch")
    alive_before_kill = all(p.poll() is None for p in first.values())
    os.killpg(first["worker"].pid, signal.SIGKILL)
    chief_alone = _wait({"chief": first["chief"]}, time.monotonic() + 5.0)["chief"]  # then killed if still there
    _kill(first)
    seconds["first"] = time.monotonic() - start - seconds["inputs"]

    scratch_before = set((workdir / "tmp").iterdir())  # the killed worker's scratch folder stays
    second = _start(workdir, "second")
    codes = _wait(second, time.monotonic() + RUN_LIMIT_S)
    logs = {task: (workdir / f"second-{task}.log").read_text() for task in second}
    seconds["second"] = time.monotonic() - start - seconds["inputs"] - seconds["first"]
    ckpt = next((workdir / "checkpoints").iterdir())
    final = {"chief": ckpt / "state", "worker": ckpt / "workers" / "worker-0"}
    return {
        "root": workdir,
        "codes": codes,
        "logs": logs,
        "killed_after": killed_after,
        "alive_before_kill": alive_before_kill,
        "chief_alone": chief_alone,
        "resumed_at": {
            t: [int(e) for e in re.findall(r"from checkpoint at epoch (\d+)", log)] for t, log in logs.items()
        },
        "states": {
            t: json.loads((d / "checkpoint.json").read_text())
            for t, d in final.items()
            if (d / "checkpoint.json").exists()
        },
        "weights": {
            t: _weights(d / f"epoch-{EPOCHS:05d}.weights.h5")
            for t, d in final.items()
            if (d / f"epoch-{EPOCHS:05d}.weights.h5").exists()
        },
        "scratch_left": sorted(str(p) for p in set((workdir / "tmp").iterdir()) - scratch_before),
        "seconds": seconds,
    }


@pytest.fixture(scope="module")
def two_workers() -> dict:
    return background.result("two_workers")


def _context(run: dict) -> str:
    return "\n".join(f"--- {task} (exit {run['codes'][task]}):\n{log[-3000:]}" for task, log in run["logs"].items())


@pytest.mark.slow
def test_a_killed_worker_and_a_restart_resume_both_from_the_same_epoch_and_finish(two_workers) -> None:
    run = two_workers
    assert run["alive_before_kill"] and 1 <= run["killed_after"] < EPOCHS  # killed mid-run, after a checkpoint
    # Alone, the chief cannot finish (its collectives fail, or wait): why a job restarts every worker.
    assert run["chief_alone"] != 0  # an error, or still running (None) when it was killed
    assert run["codes"] == {"chief": 0, "worker": 0}, _context(run)
    resumed = run["resumed_at"]
    assert resumed["chief"] == resumed["worker"] and len(resumed["chief"]) == 1, _context(run)
    assert run["killed_after"] <= resumed["chief"][0] < EPOCHS
    assert {state["epoch"] for state in run["states"].values()} == {EPOCHS}


@pytest.mark.slow
def test_both_workers_took_the_same_steps_and_end_with_identical_weights(two_workers) -> None:
    weights = two_workers["weights"]
    assert set(weights) == {"chief", "worker"}, _context(two_workers)
    # Smaller shard: 16 images, 4 per worker and step (global batch 8) -> 4 steps per epoch.
    assert weights["chief"][1] == weights["worker"][1] == EPOCHS * 4
    assert weights["chief"][0] == weights["worker"][0]  # every variable, optimizer state included


@pytest.mark.slow
def test_the_workers_read_disjoint_shards_that_cover_the_split(two_workers) -> None:
    root = two_workers["root"]
    seen = {task: set(json.loads((root / "records" / f"{task}-0.json").read_text())) for task in ("chief", "worker")}
    everything = set(json.loads((root / "train_digests.json").read_text()))
    assert len(everything) == sum(TRAIN_FILES)
    assert not seen["chief"] & seen["worker"]
    assert seen["chief"] | seen["worker"] == everything
    assert sorted(len(s) for s in seen.values()) == sorted(TRAIN_FILES)  # one file each


@pytest.mark.slow
def test_only_the_chief_writes_the_model_and_the_history(two_workers) -> None:
    root = two_workers["root"]
    serving = root / "model" / "Format-Serving"
    assert sorted(p.name for p in serving.iterdir()) == ["encoder.json", "encoder.weights.h5"]
    assert [p.parent for p in root.rglob("encoder.json")] == [serving]  # the worker's copy was temporary
    summary = json.loads((root / "model_run" / "monitor_history.json").read_text())
    assert len(summary["history"]["loss"]) == EPOCHS  # the chief's history spans the kill
    assert summary["history"]["knn_accuracy"][1] is not None  # the kNN monitor ran on both workers
    assert two_workers["scratch_left"] == []  # the worker's scratch folder is gone


def test_tf_config_names_the_chief_as_tensorflow_does() -> None:
    spec = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}
    config = {"cluster": spec, "task": {"type": "worker", "index": 1}}
    assert Cluster.from_environment({"TF_CONFIG": json.dumps(config)}) == Cluster("worker", 1, 3, 2)
    no_chief = {"cluster": {"worker": ["b:1", "c:1"]}, "task": {"type": "worker", "index": 0}}
    assert Cluster.from_environment({"TF_CONFIG": json.dumps(no_chief)}).is_chief
    assert Cluster.from_environment({}) == Cluster() and not Cluster().multi_worker
    one = {"cluster": {"workerpool0": ["a:1"]}, "task": {"type": "workerpool0", "index": 0}}
    assert Cluster.from_environment({"TF_CONFIG": json.dumps(one)}) == Cluster()  # one replica: one host
    with pytest.raises(ValueError, match="chief/worker clusters only"):
        Cluster.from_environment({"TF_CONFIG": json.dumps({"cluster": {**spec, "ps": ["d:1"]}, "task": {}})})


def test_shards_are_by_file_when_the_files_split_evenly_else_by_element() -> None:
    files = [f"f{i}" for i in range(4)]
    assert [shard_files(files[::-1], 2, r) for r in (0, 1)] == [(["f0", "f2"], None), (["f1", "f3"], None)]
    assert shard_files(files[:3], 2, 1) == (files[:3], (2, 1))  # 3 files: one worker would read twice as much
    assert shard_files(files[:1], 2, 0) == (files[:1], (2, 0))


def test_one_host_reads_every_file_and_steps_as_before() -> None:
    # No TF_CONFIG: the patterns untouched, no element shard, len // batch steps (the single-process run).
    assert shard(Cluster(), None, ["examples/Split-train/*"], 41, 8) == (["examples/Split-train/*"], None, 5)
    with pytest.raises(ValueError, match="multiple of the 3 workers"):
        shard(Cluster("chief", 0, 3, 0), None, ["x"], 41, 8)


def test_checkpoints_follow_the_shared_decision_not_the_local_clock(tmp_path) -> None:
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((8, 2), "float32")
    never = IntervalCheckpoint(str(tmp_path), io_fraction=1.0, agree=lambda due: False)  # the chief said no
    model.fit(x, x[:, :1], epochs=3, batch_size=4, callbacks=[never], verbose=0)
    assert never.saves == 2 and never.saved_epoch == 3  # when training starts and after the last epoch only
