"""`simsiam-tfx ingest`: the three components through LocalDagRunner, OUT/ingestion.json and the messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from components.ingest.splits import split_of
from tests.fakes.images import curated_schema, make_image_folder, prepare_local_tf_flowers, write_bad_files

REPO = Path(__file__).resolve().parents[2]


def ingest(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "ingest", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
    )


def counts_of(ids: list[str], classes: list[str]) -> dict:
    counts = {s: dict.fromkeys(classes, 0) for s in ("train", "eval")}
    for image_id in ids:
        counts[split_of(image_id)][image_id.split("/")[0]] += 1
    return counts


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: None, "does not exist or is not a folder"),
        (lambda root: root.mkdir(), "holds no class folders"),
        (lambda root: (root / "empty_class").mkdir(parents=True), "class folder(s) 'empty_class'"),
        (lambda root: (root / "a" / "b").mkdir(parents=True), "holds no .jpg/.jpeg/.png file"),
    ],
    ids=["missing", "no-classes", "empty-class", "unlabelled-without-images"],
)
def test_unusable_folders_fail_at_once_with_one_line_and_no_tensorflow(tmp_path: Path, make, message) -> None:
    root = tmp_path / "data"
    make(root)
    flag = "--unlabeled-dir" if "png" in message else "--data-dir"
    code = (
        "import sys\nfrom pipeline.cli import main\n"
        f"rc = main(['ingest', {flag!r}, {str(root)!r}, '--output', {str(tmp_path / 'out')!r}])\n"
        "print('TF' if 'tensorflow' in sys.modules else 'NO_TF', rc)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.stdout.strip() == "NO_TF 1"
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line and str(root) in line


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    result = ingest("--data-dir", str(tmp_path), "--eval-percent", "0")
    assert result.returncode == 2 and "--eval-percent must be from 1 to 99" in result.stderr
    result = ingest("--output", str(tmp_path))  # no input at all
    assert result.returncode == 2
    assert "give --data-dir and/or --unlabeled-dir, or --examples, or --tfds" in result.stderr
    result = ingest("--data-dir", str(tmp_path), "--tfds", "tf_flowers")  # two kinds
    assert result.returncode == 2 and "(one kind of input)" in result.stderr
    result = ingest("--data-dir", str(tmp_path), "--label-key", "label")  # a records option on folders
    assert result.returncode == 2 and "--label-key names the label feature of --examples records" in result.stderr


@pytest.mark.slow
def test_ingest_writes_the_report_prints_progress_and_reuses_the_cache(tmp_path: Path) -> None:
    root = tmp_path / "data"
    ids = make_image_folder(root, {"b_tulips": 7, "a_roses": 9})
    bad = write_bad_files(root, "a_roses")
    out = tmp_path / "out"

    first = ingest("--data-dir", str(root), "--output", str(out), "--max-rejected-fraction", "0.5", "--workers", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads((out / "ingestion.json").read_text())
    assert set(report) == {"classes", "counts", "unlabeled", "rejected", "ignored", "duplicates", "anomalies"}
    assert report["unlabeled"] == {"train": 0, "eval": 0}  # every image is in a class folder
    assert report["ignored"] == []  # no hidden file, nothing directly in the data folder
    # No --schema: the train split is checked against the schema inferred from it, so no anomaly (the eval
    # split's image ids, never in a small train split's inferred string domain, are not flagged).
    assert report["anomalies"] == []
    assert report["classes"] == ["a_roses", "b_tulips"]
    assert report["counts"] == counts_of([i for v in ids.values() for i in v], report["classes"])
    assert {r["path"]: r["reason"] for r in report["rejected"]}.keys() == bad.keys()
    assert all(bad[r["path"]] in r["reason"] for r in report["rejected"])
    for expected in (
        "ImageExampleGen running",
        "StatisticsGen",
        "SchemaGen",
        "validated",
        f"rejected files: {len(bad)}",
        "a_roses",
        str(out / "ingestion.json"),
    ):
        assert expected in first.stdout, (expected, first.stdout)

    (out / "ingestion.json").unlink()
    # The same arguments (the Beam arguments are part of the cache key): every component is cached.
    second = ingest("--data-dir", str(root), "--output", str(out), "--max-rejected-fraction", "0.5", "--workers", "1")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "ImageExampleGen cached" in second.stdout
    assert json.loads((out / "ingestion.json").read_text()) == report

    # OUT/ingestion.json cannot be written (a folder stands there): one line at the end, no traceback.
    (out / "ingestion.json").unlink()
    (out / "ingestion.json").mkdir()
    third = ingest("--data-dir", str(root), "--output", str(out), "--max-rejected-fraction", "0.5", "--workers", "1")
    assert third.returncode == 1 and "Traceback" not in third.stderr, third.stderr[-3000:]
    assert third.stderr.strip().splitlines()[-1] == (
        f"error: cannot write {out / 'ingestion.json'}: Is a directory; the previous file, if any, is unchanged"
    )
    assert sorted(os.listdir(out)) == ["ingestion.json", "metadata.sqlite", "pipeline_root", "simsiam-tfx.lock"]


@pytest.mark.slow
def test_too_many_rejected_files_exit_1_with_the_reasons(tmp_path: Path) -> None:
    root = tmp_path / "data"
    make_image_folder(root, {"a": 5, "b": 5})
    bad = write_bad_files(root, "b")  # every kind of bad file (tests/fakes/images.py) beside 10 good ones
    result = ingest("--data-dir", str(root), "--output", str(tmp_path / "out"), "--workers", "1")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    total = 10 + len(bad)
    share = f"{100 * len(bad) / total:.1f}%"
    assert last.startswith(f"error: {len(bad)} of {total} files ({share}) in data folder") and "allowed 10.0%" in last
    report = json.loads((tmp_path / "out" / "ingestion.json").read_text())
    assert sorted(r["path"] for r in report["rejected"]) == sorted(bad)
    assert f"rejected files: {len(bad)}" in result.stdout


@pytest.mark.slow
def test_ingest_from_a_tfds_dataset(tmp_path: Path) -> None:
    root = tmp_path / "flower_photos"
    make_image_folder(root, {"daisy": 3, "roses": 2, "tulips": 4, "dandelion": 1, "sunflowers": 2})
    prepare_local_tf_flowers(root, tmp_path / "tfds")
    result = ingest(
        "--tfds",
        "tf_flowers",
        "--tfds-data-dir",
        str(tmp_path / "tfds"),
        "--output",
        str(tmp_path / "o"),
        "--workers",
        "1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "o" / "ingestion.json").read_text())
    assert report["classes"] == ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    totals = {c: report["counts"]["train"][c] + report["counts"]["eval"][c] for c in report["classes"]}
    assert totals == {"daisy": 3, "dandelion": 1, "roses": 2, "sunflowers": 2, "tulips": 4}


def test_ingest_run_and_compile_take_the_same_input_options() -> None:
    from pipeline.cli import build_parser

    def input_options(command: str) -> dict[str, str | None]:
        sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
        group = next(g for g in sub._action_groups if g.title.startswith("input"))
        return {a.option_strings[0]: a.default for a in group._group_actions}

    assert input_options("ingest") == input_options("run") == input_options("compile-kubeflow")
    assert set(input_options("run")) == {
        "--data-dir",
        "--unlabeled-dir",
        "--examples",
        "--image-key",
        "--label-key",
        "--tfds",
        "--tfds-data-dir",
    }


# A curated schema (tensorflow_metadata Schema, text format) that knows only the classes "a_roses" and
# "b_tulips": data with a third class departs from it.
CURATED_SCHEMA = curated_schema("a_roses", "b_tulips")


@pytest.mark.slow
def test_a_curated_schema_the_data_departs_from_is_shown_as_a_warning(tmp_path: Path) -> None:
    root = tmp_path / "data"
    ids = make_image_folder(root, {"a_roses": 6, "b_tulips": 6, "c_daisy": 6})
    daisy_splits = [s for s in ("train", "eval") if any(split_of(i) == s for i in ids["c_daisy"])]
    schema = tmp_path / "schema.pbtxt"
    schema.write_text(CURATED_SCHEMA)
    out = tmp_path / "out"
    result = ingest("--data-dir", str(root), "--schema", str(schema), "--output", str(out), "--workers", "1")
    assert result.returncode == 0, result.stderr[-3000:]  # a warning, not a stop
    assert "ImportSchemaGen" in result.stdout and "ExampleValidator" in result.stdout
    anomalies = json.loads((out / "ingestion.json").read_text())["anomalies"]
    # Each split that holds a c_daisy image reports the unknown class once.
    assert [(a["split"], a["feature"], a["short"]) for a in anomalies] == [
        (s, "class_name", "Unexpected string values") for s in daisy_splits
    ]
    assert daisy_splits
    assert all("c_daisy" in a["description"] for a in anomalies)
    lines = [line for line in result.stdout.splitlines() if "data anomaly" in line]
    assert lines == [
        f"warning: data anomaly (split {a['split']}) class_name: Unexpected string values: {a['description']}"
        for a in anomalies
    ]
    missing = ingest("--data-dir", str(root), "--schema", str(tmp_path / "nope.pbtxt"), "--output", str(out))
    assert missing.returncode == 2 and f"--schema {tmp_path / 'nope.pbtxt'} is not a file" in missing.stderr
