"""A run without a single label: real Flowers photos in nested folders, SimSiam, the label-free gate
(a real pipeline step emitting the ModelBlessing the Pusher reads), an embedding-only serving model;
then the no-stop-gradient ablation in the same run folder, which collapses and is NOT pushed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests import background
from tests.conftest import REPO, run_cli, unlabeled_sample
from tests.fakes.images import curated_schema

pytestmark = pytest.mark.slow

# The ablation through the Python API (no CLI flag turns the stop-gradient off): the smoke profile
# without stop-gradient, at a high learning rate for 40 epochs (160 steps), into the same run folder.
ABLATION = textwrap.dedent("""
    import sys
    from pipeline.local_runner import quiet_logs
    quiet_logs(False)
    from components.ingest.inputs import ImageInput
    from pipeline.configs import profile_config
    from pipeline.local_runner import beam_pipeline_args, metadata_connection, run_local
    from pipeline.pipeline import create_pipeline
    out, data = sys.argv[1:3]
    config = profile_config("smoke", eval_percent=30).replace(stop_gradient=False, epochs=40, base_lr=0.2)
    run_local(create_pipeline("simsiam-tfx", f"{out}/pipeline_root", config, f"{out}/serving",
                              ImageInput(unlabeled_dir=data), metadata_connection(f"{out}/metadata.sqlite"),
                              beam_pipeline_args()), workers=1)
""")

EMBED_ONLY = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    model = tf.saved_model.load(sys.argv[1])
    images = tf.constant([open(p, "rb").read() for p in sys.argv[2:]])
    out = {"signatures": sorted(model.signatures.keys()),
           "embed_images": {k: v.shape.as_list() for k, v in model.signatures["embed_images"](images=images).items()}}
    print("RESULT " + json.dumps(out))
""")


# A curated schema (`--schema`) written for labelled photos: class_name may only be "roses" or "tulips".
# Unlabelled photos have class_name "", so the ExampleValidator finds them departing from it: a warning.
CURATED_SCHEMA = curated_schema("roses", "tulips")


@background.background_check("unlabeled_run")
def _unlabeled_run(workdir: Path) -> dict:
    """The label-free run, its pushed model read in a fresh process, then the ablation in the same
    folder; what each test below reads is captured before the ablation can change it."""
    photos = unlabeled_sample(workdir / "photos", 0, 16)  # 80 photos, folders are not classes
    out = workdir / "run"
    schema = workdir / "schema.pbtxt"
    schema.write_text(CURATED_SCHEMA)
    run_args = ["--profile", "smoke", "--unlabeled-dir", str(photos), "--eval-percent", "30", "--schema", str(schema)]
    result = run_cli("run", *run_args, "--output", str(out))
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-3000:]}"
    summary = json.loads((out / "summary.json").read_text())
    images = sorted(str(p) for p in photos.glob("card0/*.jpg"))[:2]
    served = subprocess.run(
        [sys.executable, "-c", EMBED_ONLY, summary["serving_model_dir"], *images],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    first = {
        "out": out,
        "photos": photos,
        "run_args": run_args,
        "stdout": result.stdout,
        "summary": summary,
        "served": served,
        "page": (out / "report.html").read_text(),
        # The Trainer exported its model: its resume checkpoints are gone (no --keep-checkpoints).
        "checkpoints": sorted(str(p) for p in (out / "pipeline_root" / "checkpoints").rglob("*") if p.is_file()),
    }
    pushed_before = sorted(p.name for p in (out / "serving").iterdir())
    ablation = subprocess.run(
        [sys.executable, "-c", ABLATION, str(out), str(photos)], capture_output=True, text=True, timeout=900, cwd=REPO
    )
    return {
        **first,
        "pushed_before": pushed_before,
        "ablation": ablation,
        "pushed_after": sorted(p.name for p in (out / "serving").iterdir()),
    }


@pytest.fixture(scope="module")
def unlabeled_run() -> dict:
    return background.result("unlabeled_run")


def _gate(out: Path) -> dict:
    from components import features as F
    from pipeline.local_runner import latest_artifact_uri

    uri = latest_artifact_uri(str(out / "metadata.sqlite"), "LabelFreeEvaluator", "evaluation")
    return json.loads(Path(uri, F.LABEL_FREE_METRICS_FILE).read_text())


def test_a_run_without_labels_is_gated_label_free_and_pushes_an_embedding_model(unlabeled_run) -> None:
    summary = unlabeled_run["summary"]
    states = summary["states"]
    assert "LinearProbeTrainer" not in states and "Evaluator" not in states
    assert all(states[n] == "COMPLETE" for n in ("SimSiamTrainer", "LabelFreeEvaluator", "Pusher", "RunReport"))
    assert summary["blessed"] and summary["pushed"], summary["label_free"]
    gate = summary["label_free"]
    assert gate["candidate"]["effective_rank"] >= 1.5 * gate["random_init"]["effective_rank"]
    ranks = (gate["candidate"]["effective_rank"], gate["random_init"]["effective_rank"])
    assert gate["rank_ratio"] == pytest.approx(ranks[0] / ranks[1])
    assert gate["baseline"] is None  # the first blessed model
    assert "[simsiam] training on" in unlabeled_run["stdout"] and "(0 labelled" in unlabeled_run["stdout"]
    assert f"label-free gate: effective rank (RankMe) {ranks[0]:.3f} vs {ranks[1]:.3f}" in unlabeled_run["stdout"]
    result = unlabeled_run["served"]
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.split("RESULT ", 1)[1])
    assert served["signatures"] == ["embed_images", "serving_default"]  # no classifier without labels
    assert served["embed_images"]["embedding"][0] == 2
    page = unlabeled_run["page"]
    assert "Gate (label-free: no labels in the data)" in page and "RankMe" in page
    # Captions that describe what an unlabelled run draws: no classes, no green and red tiles, no kNN line.
    assert "captioned with file name and similarity" in page and "Green: same class" not in page


def test_the_collapsed_ablation_is_not_pushed(unlabeled_run) -> None:
    out, result = unlabeled_run["out"], unlabeled_run["ablation"]
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    gate = _gate(out)
    assert gate["blessed"] is False
    assert gate["rank_ratio"] < 1.5 and any("random-init encoder" in r for r in gate["reasons"]), gate
    assert gate["baseline"] is not None  # compared with the blessed model of the first run, too
    assert unlabeled_run["pushed_after"] == unlabeled_run["pushed_before"]


def test_data_anomalies_against_a_curated_schema_are_warned_in_the_console_summary_and_report(unlabeled_run) -> None:
    summary, stdout, page = unlabeled_run["summary"], unlabeled_run["stdout"], unlabeled_run["page"]
    assert summary["states"]["ImportSchemaGen"] in ("COMPLETE", "CACHED") and "SchemaGen" not in summary["states"]
    assert summary["pushed"]  # a warning: the run went on and pushed
    found = {(a["split"], a["feature"], a["short"]) for a in summary["anomalies"]}
    assert found == {(s, "class_name", "Unexpected string values") for s in ("unlabeled_train", "unlabeled_eval")}
    for a in summary["anomalies"]:
        assert f"data anomaly (split {a['split']}) class_name: Unexpected string values: {a['description']}" in stdout
        assert f"<td>{a['split']}</td><td>class_name</td><td>Unexpected string values</td>" in page
    assert f"Data anomalies ({len(summary['anomalies'])})" in page
    assert "<td>profile</td><td>smoke: " in page and "<th></th>" not in page
    for name in ("training_curves.png", "embedding_map_tsne.png", "neighbour_grid.jpg"):  # the report's, copied
        assert str(unlabeled_run["out"] / name) in summary["plots"]


def test_the_trainers_resume_checkpoints_are_removed_once_its_model_is_exported(unlabeled_run) -> None:
    assert unlabeled_run["checkpoints"] == []
    assert "removed its resume checkpoints" in unlabeled_run["stdout"]


def test_a_refused_model_exits_3_with_the_reason_and_a_search_command_for_the_candidate(unlabeled_run) -> None:
    """The first-hour case of few unlabelled photos: the gate refuses, so nothing is pushed. The run says
    why in one line, exits 3, and names the trained model with a `search` command that uses it anyway.
    Made here by a bar no model can pass on the same run folder: only the gate and what follows it run
    again (last in this module: the gate's latest verdict in the folder becomes this refusal)."""
    from pipeline.commands.run import EXIT_NOT_PUSHED

    out = unlabeled_run["out"]
    result = run_cli("run", *unlabeled_run["run_args"], "--min-rank-ratio", "100", "--output", str(out))
    assert result.returncode == EXIT_NOT_PUSHED, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    last = result.stderr.rstrip().splitlines()[-1]
    assert last.startswith(f"simsiam-tfx run: finished, nothing pushed (exit status {EXIT_NOT_PUSHED}): effective_rank")
    assert "below 100 x the random-init encoder's" in last
    summary = json.loads((out / "summary.json").read_text())
    assert summary["states"]["SimSiamTrainer"] == "CACHED" and not summary["pushed"]
    candidate = summary["candidate_model_dir"]
    assert Path(candidate, "saved_model.pb").is_file()
    assert f"  the trained model (not pushed): {candidate}\n" in result.stdout
    anyway = [ln for ln in result.stdout.splitlines() if ln.startswith("  use it anyway: simsiam-tfx search ")]
    assert anyway and f"--model {candidate} " in anyway[0] and "--index " in anyway[0]
    assert sorted(p.name for p in (out / "serving").iterdir()) == unlabeled_run["pushed_after"]
