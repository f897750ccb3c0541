"""The smoke run's report.html and TensorBoard projector files (the session's one smoke pipeline run).

Other e2e tests re-run the pipeline into the same folder (cache, floor, resume), so each test reads
OUT/summary.json and OUT/report.html as they are now: both come from the latest run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.browser import chromium, open_page

pytestmark = pytest.mark.slow
SAME_NUMBERS = [
    "blessed",
    "pushed",
    "serving_model_dir",
    "eval_metrics",
    "simsiam_monitor",
    "random_init_knn_accuracy",
    "random_init_linear_probe_accuracy",
    "baselines",
    "probe",
    "anomalies",  # the ExampleValidator's, read by the RunReport and by the summary from the same artifact
    "profile",
]


def _report(out: Path) -> tuple[str, dict, dict]:
    page = (out / "report.html").read_text()
    data = json.loads(re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)[1])
    return page, data, json.loads((out / "summary.json").read_text())


def test_report_numbers_are_summary_jsons_and_every_image_is_embedded(smoke_run):
    out = smoke_run["out"]
    assert f"report: {out / 'report.html'}" in smoke_run["stdout"]
    page, data, summary = _report(out)
    assert summary["report"] == str(out / "report.html")
    assert {k: data[k] for k in SAME_NUMBERS} == {k: summary[k] for k in SAME_NUMBERS}
    shown = [
        summary["eval_metrics"]["accuracy"],
        summary["random_init_knn_accuracy"],
        summary["simsiam_monitor"]["knn_accuracy"],
        *summary["eval_metrics"]["per_class_accuracy"].values(),
        *(
            summary["baselines"][name][metric]
            for name in ("random_filters", "colour_histograms")
            for metric in ("knn", "linear_probe")
        ),
    ]
    for value in shown:
        assert f">{value:.4f}<" in page, value
    # The step rebuilt the random-init encoder from the recipe and seed: it scores what the Trainer measured.
    assert data["random_init_knn_accuracy_recomputed"] == pytest.approx(summary["random_init_knn_accuracy"], abs=0.1)
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert len(srcs) == 3 and all(re.match(r"data:image/(png|jpeg);base64,", s) for s in srcs)
    assert not re.search(r'(src|href)="(?!data:)', page)
    rejected = json.loads(
        next((out / "pipeline_root" / "ImageExampleGen").glob("examples/*/ingestion_report.json")).read_text()
    )["rejected"]
    assert f"Rejected files ({len(rejected)})" in page
    for node, secs in summary["seconds_per_component"].items():  # filled in by `run` after the pipeline
        assert f"<td>{node}</td><td>{summary['states'][node].lower()}</td><td>{secs:.1f}</td>" in page


def test_report_loads_in_headless_chromium_with_every_image_shown(smoke_run):
    if chromium() is None:
        pytest.skip("chromium is not installed (.ci/run installs it: apt-get install chromium)")
    result = open_page(smoke_run["out"] / "report.html")
    assert result["loaded"], "no load event"
    assert result["failed"] == []
    assert len(result["images"]) == 3
    for image in result["images"]:
        assert image["complete"] and image["naturalWidth"] > 0 and image["naturalHeight"] > 0, image
        assert image["width"] > 0 and image["height"] > 0, image


def test_projector_files_match_the_index(smoke_run):
    from google.protobuf import text_format
    from tensorboard.plugins.projector import projector_config_pb2

    from serving.index import EmbeddingIndex

    summary = json.loads((smoke_run["out"] / "summary.json").read_text())
    index = EmbeddingIndex.load(summary["embedding_index"])
    folder = Path(summary["embedding_index"]).parent / "projector"
    config = text_format.Parse((folder / "projector_config.pbtxt").read_text(), projector_config_pb2.ProjectorConfig())
    (embedding,) = config.embeddings
    tensor = np.loadtxt(folder / embedding.tensor_path, delimiter="\t", ndmin=2)
    assert tensor.shape == index.embeddings.shape == tuple(embedding.tensor_shape)
    np.testing.assert_allclose(tensor, index.embeddings, rtol=1e-4, atol=1e-5)
    metadata = (folder / embedding.metadata_path).read_text().splitlines()
    assert len(metadata) == 1 + len(index)
    assert [row.split("\t")[1] for row in metadata[1:]] == index.paths.tolist()
    side = embedding.sprite.single_image_dim[0]
    grid = int(np.ceil(np.sqrt(len(index))))
    from PIL import Image

    with Image.open(folder / embedding.sprite.image_path) as sprite:
        assert sprite.size == (grid * side, grid * side)
    assert list(folder.glob("events.out.tfevents.*"))  # a run folder: `tensorboard --logdir OUT` lists it
