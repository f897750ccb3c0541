"""The run report's parts on small hand-made inputs: neighbours, queries, the page, the projector files."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from components.index.projector import CONFIG_FILE, METADATA_FILE, SPRITE_FILE, TENSOR_FILE, sprite, write_projector
from components.report.data import nearest, select_queries
from components.report.html import TIMINGS_START, render_report, with_timings
from tests.browser import chromium, open_page


def test_nearest_by_hand():
    emb = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [1.0, 0.1], [-1.0, 0.0]])
    rows, sims = nearest(emb, queries=np.array([0, 1]), base=np.array([2, 3, 4]), k=2)
    assert rows.tolist() == [[3, 2], [2, 3]]
    np.testing.assert_allclose(sims, [[1 / np.sqrt(1.01), 1 / np.sqrt(2)], [1 / np.sqrt(2), 0.1 / np.sqrt(1.01)]])


def test_queries_are_class_balanced_and_stable():
    labels = np.array([1, 0, 1, 0, 1, 2, 0])
    ids = np.array(["b/3", "a/9", "b/1", "a/2", "b/2", "c/1", "a/5"])
    rows = select_queries(labels, ids, candidates=np.array([0, 1, 2, 3, 4, 6]), per_class=2)
    assert [ids[r] for r in rows] == ["a/2", "a/5", "b/1", "b/2"]  # class 2 is not a candidate


def _png(path: Path, size=(8, 6)) -> str:
    Image.new("RGB", size, (200, 30, 30)).save(path)
    return str(path)


def _data(rejected):
    return {
        "blessed": True,
        "pushed": False,
        "serving_model_dir": None,
        "gate": {"accuracy_floor": 0.5, "validation_ok": False, "failures": ["accuracy: 0.4000 (below the floor)"]},
        "eval_metrics": {"accuracy": 0.61234, "example_count": 11.0, "per_class_accuracy": {"roses": 0.75, "a&b": 0.5}},
        "simsiam_monitor": {"knn_accuracy": 0.55},
        "random_init_knn_accuracy": 0.40625,
        "random_init_linear_probe_accuracy": 0.3,
        "random_init_knn_accuracy_recomputed": 0.40625,
        "probe": {},
        "baselines": {
            "random_init": {"knn": 0.40625, "linear_probe": 0.3},
            "random_filters": {"knn": 0.5, "linear_probe": 0.6543},
            "colour_histograms": {"knn": 0.5125, "linear_probe": 0.25},
        },
        "index": {
            "failed": [{"path": "x/late.jpg", "reason": "model rejected it"}],
            "gate": {
                "kind": "ivf",
                "rows": 200000,
                "nlist": 1789,
                "nprobe": 8,
                "queries": 1000,
                "k": 10,
                "recall_at_10": 0.9712,
                "min_recall": 0.95,
                "latency_ms_p50": 0.21,
                "latency_ms_p95": 0.35,
                "queries_per_s_batch64": 21000.5,
                "threads": 2,
                "passed": True,
            },
        },
        "ingestion": {"counts": {"eval": {"roses": 4}}, "rejected": rejected},
        "class_names": ["a&b", "roses"],
    }


def test_page_shows_the_numbers_embeds_the_images_and_lists_rejected_files(tmp_path):
    rejected = [{"path": "roses/<bad>.jpg", "reason": "not an image"}, {"path": "tulips/t.png", "reason": "truncated"}]
    data = _data(rejected)
    figures = {"curves": _png(tmp_path / "c.png"), "map": _png(tmp_path / "m.png")}
    page = render_report(data, figures)
    blob = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)[1]
    assert json.loads(blob) == data  # JSON reads the escaped "<\/" back as "</"
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert len(srcs) == 2 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing to fetch
    # The gain is over the strongest baseline of each row: kNN 0.55 - 0.5125, linear 0.61234 - 0.6543.
    for text in (
        "0.6123",
        "0.4062",
        "0.0375",
        "-0.0420",
        "0.6543",
        "random 3x3 filters + mean RGB",
        "0.7500",
        "Rejected files (3)",
        html.escape("roses/<bad>.jpg"),
        "truncated",
        "x/late.jpg",
        "model rejected it",
        "a&amp;b",
        "below the floor",
        "IVF (faiss IndexIVFFlat, nlist 1789, nprobe 8), 200000 rows",
        'recall@10 vs exact search on 1000 rows (needed: &gt;= 0.9500)</td><td class="n">0.9712',
        "0.2100 / 0.3500",
        "<td>queries/s at batch 64</td><td>21000</td>",
        '<td>eval examples</td><td class="n">11</td>',  # a count, not TFMA's float 11.0
        "only 11 eval images: each accuracy here has a standard error of up to 15 points",
    ):
        assert text in page, text
    filled = with_timings(page, {"Transform": 12.25, "Pusher": 0.5}, {"Transform": "COMPLETE", "Pusher": "CACHED"})
    assert "<td>Transform</td><td>complete</td><td>12.2</td>" in filled and "<td>Pusher</td><td>cached</td>" in filled
    assert "<td>sum</td><td></td><td>12.8</td>" in filled
    assert "Filled in by" not in filled and filled.count(TIMINGS_START) == 1
    with pytest.raises(ValueError, match="placeholder"):
        with_timings("<html></html>", {}, {})


def test_page_renders_in_chromium_and_a_broken_image_is_caught(tmp_path):
    if chromium() is None:
        pytest.skip("chromium is not installed (.ci/run installs it: apt-get install chromium)")
    page = render_report(_data([]), {"curves": _png(tmp_path / "c.png", (40, 30))})
    (tmp_path / "ok.html").write_text(page)
    result = open_page(tmp_path / "ok.html")
    assert result["loaded"] and result["failed"] == [] and result["title"] == "simsiam-tfx run report"
    assert [(i["naturalWidth"], i["width"] > 0) for i in result["images"]] == [(40, True)]
    (tmp_path / "bad.html").write_text(page.replace("data:image/png;base64,", "missing.png#"))
    broken = open_page(tmp_path / "bad.html")
    assert broken["failed"] and broken["images"][0]["naturalWidth"] == 0


def test_projector_files_read_back_with_tensorboards_config(tmp_path):
    from google.protobuf import text_format
    from tensorboard.plugins.projector import projector_config_pb2

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(7, 5)).astype(np.float32)
    thumbs = rng.integers(0, 255, size=(7, 4, 4, 3), dtype=np.uint8)
    labels, ids = np.array([0, 1, 1, 0, -1, 1, 0]), np.array([f"c/{i}\tx.jpg" for i in range(7)])
    path = write_projector(
        str(tmp_path), emb, labels, ["daisy", "roses"], ids, np.array(["train"] * 6 + ["eval"]), thumbs
    )
    config = text_format.Parse(Path(path).read_text(), projector_config_pb2.ProjectorConfig())
    (embedding,) = config.embeddings
    assert Path(path).name == CONFIG_FILE and embedding.tensor_path == TENSOR_FILE
    assert list(embedding.tensor_shape) == [7, 5] and list(embedding.sprite.single_image_dim) == [4, 4]
    np.testing.assert_allclose(np.loadtxt(tmp_path / embedding.tensor_path, delimiter="\t"), emb, rtol=1e-4)
    rows = (tmp_path / embedding.metadata_path).read_text().splitlines()
    assert rows[0] == "class\timage_id\tsplit" and len(rows) == 1 + 7
    assert rows[2] == "roses\tc/1 x.jpg\ttrain" and rows[5].startswith("unlabelled\t") and rows[7].endswith("\teval")
    with Image.open(tmp_path / embedding.sprite.image_path) as image:
        assert image.size == (3 * 4, 3 * 4) and embedding.sprite.image_path == SPRITE_FILE
        assert np.array_equal(np.asarray(image)[4:8, 0:4], thumbs[3])  # row-major tiles: image 3 is row 1, col 0
    assert list(tmp_path.glob("events.out.tfevents.*")), "no event file: TensorBoard would not list the folder"
    assert METADATA_FILE in {p.name for p in tmp_path.iterdir()}
    with pytest.raises(ValueError, match="7 embeddings but 6 labels"):
        write_projector(str(tmp_path / "bad"), emb, labels[:6], ["a"], ids, None, None)


def test_sprite_shrinks_tiles_to_the_size_limit():
    thumbs = np.full((9, 4, 4, 3), 255, np.uint8)
    image, side = sprite(thumbs, max_px=10)  # a 3 x 3 grid of 4-px tiles would be 12 px: tiles become 3 px
    assert side == 3 and image.shape == (9, 9, 3) and image.min() == 255


def test_the_knn_curve_is_drawn_against_random_init_and_the_strongest_cheap_baseline(tmp_path):
    from components.report.figures import plot_training_curves
    from components.report.html import baseline_scores, knn_references

    data = _data([])
    lines = knn_references(baseline_scores(data))
    assert lines == [("random init", 0.40625), ("colour histograms", 0.5125)]  # kNN 0.5125 beats the filters' 0.5
    old_run = {"random_init_knn_accuracy": 0.4, "random_init_linear_probe_accuracy": 0.3}  # before the cheap ones
    assert knn_references(baseline_scores(old_run)) == [("random init", 0.4)]
    path = plot_training_curves(
        {"loss": [-0.1, -0.5], "knn_accuracy": [None, 0.55]},
        tmp_path / "c.png",
        references={"knn_accuracy": lines + [("missing", None)]},
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000


def test_the_steps_page_is_complete_without_the_run_and_tells_where_the_timings_are(tmp_path):
    page = render_report(_data([]), {})
    section = page[page.index(TIMINGS_START) : page.index("<h2>Embedding index</h2>")]
    assert "Filled in by" not in page and "summary.json" in section and "seconds_per_component" in section


def test_summary_json_is_report_json_plus_what_only_the_run_knows(tmp_path):
    from ml_metadata.proto import metadata_store_pb2

    from components.evaluate.baseline_gate import GATE_FILE
    from components.report.component import report_data_path
    from pipeline.component_ids import BASELINE_GATE_ID
    from pipeline.mlmd import NodeExecution
    from pipeline.summary import build_summary

    page = tmp_path / "RunReport" / "report" / "7" / "value"  # a ValueArtifact's URI is its file
    page.parent.mkdir(parents=True)
    page.write_text("<html></html>")
    data = _data([])
    decision = {"blessed": False, "reasons": ["kNN below the strongest baseline"]}
    data["gate"]["baseline_gate"] = decision
    assert report_data_path(str(page)) == str(page.parent / "report.json")
    Path(report_data_path(str(page))).write_text(json.dumps(data))
    blessing = tmp_path / "BaselineGate" / "blessing" / "6"  # the verdict as the BaselineGate wrote it
    blessing.mkdir(parents=True)
    (blessing / GATE_FILE).write_text(json.dumps(decision))
    gate = NodeExecution(
        BASELINE_GATE_ID, "COMPLETE", 0.5, {"blessing": [metadata_store_pb2.Artifact(uri=str(blessing))]}
    )
    ran = [
        NodeExecution("Transform", "CACHED", 1.25),
        gate,
        NodeExecution("RunReport", "COMPLETE", 3.0, {"report": [metadata_store_pb2.Artifact(uri=str(page))]}),
    ]
    summary = build_summary(ran, peak_rss_mb=512.04, wall_s=9.87, config={"profile": "smoke"})
    status = ("blessed", "pushed", "serving_model_dir")  # from ML Metadata: no gate or Pusher ran here
    assert {k: v for k, v in summary.items() if k in data and k not in status} == {
        k: v for k, v in data.items() if k not in status
    }
    assert summary["blessed"] is False and summary["pushed"] is False and summary["serving_model_dir"] is None
    assert summary["gate_reasons"] == ["kNN below the strongest baseline"]
    assert summary["baseline_gate"] == data["gate"]["baseline_gate"]
    assert summary["seconds_per_component"] == {"Transform": 1.2, BASELINE_GATE_ID: 0.5, "RunReport": 3.0}
    assert summary["states"]["Transform"] == "CACHED" and summary["peak_rss_mb"] == 512.0
    failed_early = build_summary(ran[:1], 1.0, 1.0, {})  # no RunReport, no report.json: timings only
    assert "eval_metrics" not in failed_early and failed_early["seconds_per_component"] == {"Transform": 1.2}
    failed_late = build_summary(ran[:2], 1.0, 1.0, {})  # the gate ran, a later step failed: its verdict stands
    assert "eval_metrics" not in failed_late and failed_late["baseline_gate"] == decision
    assert failed_late["gate_reasons"] == ["kNN below the strongest baseline"]


def test_the_header_has_no_empty_rows_and_shows_the_profile_and_the_data_anomalies(tmp_path):
    from components.report.data import profile_row

    data = _data([])
    data["profile"] = profile_row("smoke", {"backbone": "resnet18", "image_size": 32, "epochs": 2, "batch_size": 16})
    data["anomalies"] = [
        {"split": "eval", "feature": "class_name", "short": "Unexpected string values", "description": "c_daisy"}
    ]
    page = render_report(data, {})
    assert "<th></th>" not in page and "<tr></tr>" not in page  # name | value tables have no header row
    assert "<td>profile</td><td>smoke: resnet18, 32 px, 2 epochs, batch 16</td>" in page
    data["profile"] = profile_row("cpu", {"backbone": "resnet18", "image_size": 64, "eval_size": 96, "epochs": 200})
    assert "cpu: resnet18, 64 px crops, evaluated at 96 px, 200 epochs" in render_report(data, {})
    assert "Data anomalies (1)" in page
    assert "<td>eval</td><td>class_name</td><td>Unexpected string values</td><td>c_daisy</td>" in page
    assert "Data anomalies (0)</h2>" in render_report(_data([]), {})  # an older report.json: none shown


def _anomalies_artifact(folder: Path) -> str:
    """An ExampleValidator output in its own format: Split-<name>/SchemaDiff.pb, a binary Anomalies proto."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    for split, values in (("train", []), ("eval", ["c_daisy"])):
        anomalies = anomalies_pb2.Anomalies()
        for value in values:
            info = anomalies.anomaly_info["class_name"]
            info.short_description = "Unexpected string values"
            info.description = f"Examples contain values missing from the schema: {value} (~10%). "
        (folder / f"Split-{split}").mkdir(parents=True)
        (folder / f"Split-{split}" / "SchemaDiff.pb").write_bytes(anomalies.SerializeToString())
    return str(folder)


def test_summary_shows_the_validators_anomalies_and_copies_the_reports_figures_without_drawing(tmp_path):
    from ml_metadata.proto import metadata_store_pb2

    import pipeline.summary
    from components.report.component import figures_dir
    from pipeline.mlmd import NodeExecution
    from pipeline.summary import build_summary, copy_figures

    page = tmp_path / "RunReport" / "report" / "7" / "value"
    Path(figures_dir(str(page))).mkdir(parents=True)
    curves = _png(Path(figures_dir(str(page))) / "training_curves.png")
    page.write_text("<html></html>")
    anomalies = _anomalies_artifact(tmp_path / "ExampleValidator" / "anomalies" / "4")
    ran = [
        NodeExecution("ExampleValidator", "COMPLETE", 1.0, {"anomalies": [metadata_store_pb2.Artifact(uri=anomalies)]}),
        NodeExecution("RunReport", "COMPLETE", 3.0, {"report": [metadata_store_pb2.Artifact(uri=str(page))]}),
    ]
    summary = build_summary(ran, 1.0, 1.0, {})
    assert summary["anomalies"] == [
        {
            "split": "eval",
            "feature": "class_name",
            "short": "Unexpected string values",
            "description": "Examples contain values missing from the schema: c_daisy (~10%).",
        }
    ]
    out = tmp_path / "out"
    out.mkdir()
    assert copy_figures(ran, str(out)) == [str(out / "training_curves.png")]
    assert (out / "training_curves.png").read_bytes() == Path(curves).read_bytes()
    assert not hasattr(pipeline.summary, "write_plots")  # one set of figures per run: the RunReport's


def test_the_label_free_gate_names_its_encoder_spread_apart_from_the_training_collapse_std():
    from components.report.html import FIGURE_CAPTIONS_UNLABELLED, LABEL_FREE_EXPLAINED, label_free_rows

    result = {
        "candidate": {"effective_rank": 9.0, "encoder_spread": 0.41},
        "random_init": {"effective_rank": 3.0, "collapse_std": 0.22},  # a file written before the rename
        "thresholds": {"min_encoder_spread": 0.1, "min_rank_ratio": 1.5},
        "rank_ratio": 3.0,
        "blessed": True,
    }
    rows = dict(label_free_rows(result))
    assert rows["encoder spread: candidate (0 = collapsed; needed: >= 0.1000)"] == 0.41
    assert rows["encoder spread: random init"] == 0.22
    assert not any("collapse" in str(name) and "spread" not in str(name) for name in rows)
    assert "collapse_std" in LABEL_FREE_EXPLAINED and "projector" in LABEL_FREE_EXPLAINED
    assert "projector output" in FIGURE_CAPTIONS_UNLABELLED["curves"]


def _caption(page: str, figure: str) -> str:
    """The caption under the page's `figure` ("curves", "map" or "neighbours"), unescaped."""
    return html.unescape(re.search(rf'alt="{figure}"><figcaption>(.*?)</figcaption>', page, re.S)[1])


def test_the_unlabelled_neighbour_caption_counts_the_photos_it_shows(tmp_path):
    """Five held-out photos: the caption says five were shown, not the ten a larger folder gives."""
    from components.report.data import draw_figures
    from serving.index import EmbeddingIndex

    rng = np.random.default_rng(0)
    splits = np.array(["unlabeled_eval"] * 5 + ["unlabeled_train"] * 6)
    index = EmbeddingIndex(
        paths=np.array([f"p/{i:02d}.jpg" for i in range(11)]),
        embeddings=rng.normal(size=(11, 4)).astype(np.float32),
        labels=np.full(11, -1),
        class_names=np.array([], dtype=str),
        splits=splits,
        thumbnails=rng.integers(0, 255, (11, 8, 8, 3), dtype=np.uint8),
    )
    figures, shown = draw_figures(index, index.embeddings[::-1].copy(), {}, [], 2, str(tmp_path))
    assert shown["neighbour_queries"] == 5
    label_free = {"candidate": {}, "random_init": {}, "thresholds": {"min_encoder_spread": 0.1, "min_rank_ratio": 1.5}}
    data = {**_data([]), "label_free": label_free, "eval_metrics": {}, "figures_shown": shown}
    caption = _caption(render_report(data, {"neighbours": figures["neighbours"]}), "neighbours")
    assert "the first 5 by file name" in caption and "ten" not in caption


def test_the_knn_curve_caption_says_where_the_curve_ended_against_each_dashed_line(tmp_path):
    """Below the strongest cheap baseline, the caption must not say the curve ends above both lines."""
    baselines = {
        "random_init": {"knn": 0.4, "linear_probe": 0.3},
        "colour_histograms": {"knn": 0.5125, "linear_probe": 0.5},
    }
    below = {**_data([]), "baselines": baselines, "simsiam_monitor": {"knn_accuracy": 0.45}}
    caption = _caption(render_report(below, {"curves": _png(tmp_path / "c.png")}), "curves")
    assert "ends 0.0500 above random init and 0.0625 below colour histograms" in caption
    assert "must end above" not in caption
    above = {**below, "simsiam_monitor": {"knn_accuracy": 0.55}}
    caption = _caption(render_report(above, {"curves": _png(tmp_path / "c.png")}), "curves")
    assert "ends 0.1500 above random init and 0.0375 above colour histograms" in caption
