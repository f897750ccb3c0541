"""`OUT/summary.json` and the plots next to it, built from what ML Metadata recorded."""

from __future__ import annotations

import json
import os
from typing import Any

from components import features as F
from components.evaluate.tfma_results import evaluation_metrics
from components.index.embedding_index import index_file
from pipeline.pipeline import BASELINE_GATE_ID, LABEL_FREE_EVALUATOR_ID, PROBE_TRAINER_ID, SIMSIAM_TRAINER_ID
from pipeline.report import label_free_result
from pipeline.run_report import NodeExecution, custom_int, output_uri
from serving.atomic import write_text_atomic


def _read_json(path: str | None) -> dict[str, Any]:
    if path and os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {}


def simsiam_monitor(executions: list[NodeExecution]) -> dict[str, Any]:
    """The SimSiam Trainer's monitor file: final values, per-epoch history, random-init kNN baseline."""
    run_dir = output_uri(executions, SIMSIAM_TRAINER_ID, "model_run") or ""
    return _read_json(os.path.join(run_dir, F.MONITOR_HISTORY_FILE))


def build_summary(
    executions: list[NodeExecution], peak_rss_mb: float, wall_s: float, config: dict[str, Any]
) -> dict[str, Any]:
    from tfx.utils import path_utils

    from components.evaluate.baseline_gate import read_decision

    label_free_uri = output_uri(executions, LABEL_FREE_EVALUATOR_ID, "evaluation")
    gate_id = LABEL_FREE_EVALUATOR_ID if label_free_uri else BASELINE_GATE_ID
    blessed = custom_int(executions, gate_id, "blessing", "blessed") == 1
    label_free = label_free_result(label_free_uri) if label_free_uri else None
    baseline_gate = None if label_free_uri else read_decision(output_uri(executions, BASELINE_GATE_ID, "blessing"))
    candidate_uri = output_uri(executions, SIMSIAM_TRAINER_ID if label_free_uri else PROBE_TRAINER_ID, "model")
    pushed = custom_int(executions, "Pusher", "pushed_model", "pushed") == 1
    pushed_uri = None
    for ex in executions:
        if ex.node_id == "Pusher" and ex.outputs.get("pushed_model"):
            props = ex.outputs["pushed_model"][0].custom_properties
            pushed_uri = props["pushed_destination"].string_value if "pushed_destination" in props else None
    monitor = simsiam_monitor(executions)
    evaluation_uri = output_uri(executions, "Evaluator", "evaluation")
    return {
        "blessed": blessed,
        "pushed": pushed,
        "serving_model_dir": pushed_uri if pushed else None,
        # The model the gate judged, pushed or not: a SavedModel `embed` and `search` take as --model.
        "candidate_model_dir": path_utils.serving_model_path(candidate_uri) if candidate_uri else None,
        # Why the gate did not bless, in plain words ([] when it did, or did not run).
        "gate_reasons": [] if blessed else (label_free or baseline_gate or {}).get("reasons", []),
        "embedding_index": index_file(output_uri(executions, "EmbeddingIndexer", "embedding_index")),
        "eval_metrics": evaluation_metrics(evaluation_uri) if evaluation_uri else {},
        # Without labels: the label-free gate's measures and decision (components/evaluate/label_free.py).
        "label_free": label_free,
        # With labels: the BaselineGate's comparisons with the untrained baselines (baseline_gate.json).
        "baseline_gate": baseline_gate,
        "simsiam_monitor": monitor.get("final", {}),
        "random_init_knn_accuracy": monitor.get("random_init_knn_accuracy"),
        "random_init_linear_probe_accuracy": monitor.get("random_init_linear_probe_accuracy"),
        "baselines": monitor.get("baselines", {}),
        "probe": _read_json(
            os.path.join(output_uri(executions, PROBE_TRAINER_ID, "model_run") or "", F.PROBE_HISTORY_FILE)
        ).get("final", {}),
        "seconds_per_component": {ex.node_id: round(ex.seconds, 1) for ex in executions},
        "states": {ex.node_id: ex.state for ex in executions},
        "wall_s": round(wall_s, 1),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "config": config,
    }


def write_report(executions: list[NodeExecution], summary: dict[str, Any], out_dir: str) -> str | None:
    """Copies the RunReport step's page to `out_dir`/report.html with the time per component filled in;
    returns its path, or None when the step did not run (e.g. an earlier step failed)."""
    from pipeline.report import REPORT_FILE
    from pipeline.report_html import with_timings

    uri = output_uri(executions, "RunReport", "report")
    if not uri or not os.path.exists(uri):
        return None
    with open(uri, encoding="utf-8") as f:
        page = with_timings(f.read(), summary["seconds_per_component"], summary["states"])
    path = os.path.join(out_dir, REPORT_FILE)
    write_text_atomic(path, page)
    return path


def write_plots(summary: dict[str, Any], history: dict[str, list], out_dir: str) -> list[str]:
    """Training curves, and a 2-D map of the eval split's embeddings from the pipeline's embedding index."""
    import numpy as np

    from pipeline.plots import plot_embedding_map, plot_training_curves
    from pipeline.report_html import baseline_scores, knn_references
    from serving.index import EmbeddingIndex

    written = []
    if history:
        written.append(
            str(
                plot_training_curves(
                    history,
                    os.path.join(out_dir, "training_curves.png"),
                    title="SimSiam pre-training",
                    references={"knn_accuracy": knn_references(baseline_scores(summary))},
                )
            )
        )
    if summary.get("embedding_index") and os.path.exists(summary["embedding_index"]):
        index = EmbeddingIndex.load(summary["embedding_index"])
        rows = np.flatnonzero(index.splits == "eval") if index.splits is not None else np.arange(len(index))
        if not len(rows):  # no labels: the held-out unlabelled images
            rows = np.flatnonzero(np.char.endswith(index.splits.astype(str), "eval"))
        written.append(
            str(
                plot_embedding_map(
                    index.embeddings[rows],
                    index.labels[rows],
                    list(index.class_names),
                    os.path.join(out_dir, "embedding_map.png"),
                )
            )
        )
    return written
