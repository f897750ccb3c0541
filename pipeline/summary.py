"""`OUT/summary.json` and the plots next to it: the RunReport's `report.json` plus what only the run knows.

The RunReport step (components/report/) gathers the run's results once and writes them beside its page
as `report.json`; the summary is that data plus the run's timings, states, memory and config, and the
few facts ML Metadata holds that the step does not see (the candidate model, the index's path). A run
that failed before the step has no report.json: its summary says what ran and how long it took.
"""

from __future__ import annotations

import os
from typing import Any

from components import features as F
from components.index.embedding_index import index_file
from components.json_files import read_json
from components.report.component import report_data_path
from pipeline.mlmd import NodeExecution, custom_int, output_uri
from pipeline.pipeline import (
    BASELINE_GATE_ID,
    LABEL_FREE_EVALUATOR_ID,
    PROBE_TRAINER_ID,
    RUN_REPORT_ID,
    SIMSIAM_TRAINER_ID,
)
from serving.atomic import write_text_atomic


def simsiam_monitor(executions: list[NodeExecution]) -> dict[str, Any]:
    """The SimSiam Trainer's monitor file: final values, per-epoch history, random-init kNN baseline."""
    run_dir = output_uri(executions, SIMSIAM_TRAINER_ID, "model_run") or ""
    return read_json(os.path.join(run_dir, F.MONITOR_HISTORY_FILE))


def report_data(executions: list[NodeExecution]) -> dict[str, Any]:
    """The RunReport's `report.json` (components/report/data.py `build_report`), or {} when it did not run."""
    uri = output_uri(executions, RUN_REPORT_ID, "report")
    return read_json(report_data_path(uri)) if uri else {}


def build_summary(
    executions: list[NodeExecution], peak_rss_mb: float, wall_s: float, config: dict[str, Any]
) -> dict[str, Any]:
    from tfx.utils import path_utils

    label_free_uri = output_uri(executions, LABEL_FREE_EVALUATOR_ID, "evaluation")
    gate_id = LABEL_FREE_EVALUATOR_ID if label_free_uri else BASELINE_GATE_ID
    blessed = custom_int(executions, gate_id, "blessing", "blessed") == 1
    candidate_uri = output_uri(executions, SIMSIAM_TRAINER_ID if label_free_uri else PROBE_TRAINER_ID, "model")
    pushed = custom_int(executions, "Pusher", "pushed_model", "pushed") == 1
    pushed_uri = None
    for ex in executions:
        if ex.node_id == "Pusher" and ex.outputs.get("pushed_model"):
            props = ex.outputs["pushed_model"][0].custom_properties
            pushed_uri = props["pushed_destination"].string_value if "pushed_destination" in props else None
    report = report_data(executions)
    baseline_gate = (report.get("gate") or {}).get("baseline_gate")
    return {
        **report,
        "blessed": blessed,
        "pushed": pushed,
        "serving_model_dir": pushed_uri if pushed else None,
        # The model the gate judged, pushed or not: a SavedModel `embed` and `search` take as --model.
        "candidate_model_dir": path_utils.serving_model_path(candidate_uri) if candidate_uri else None,
        # Why the gate did not bless, in plain words ([] when it did, or did not run).
        "gate_reasons": [] if blessed else (report.get("label_free") or baseline_gate or {}).get("reasons", []),
        "embedding_index": index_file(output_uri(executions, "EmbeddingIndexer", "embedding_index")),
        # With labels: the BaselineGate's comparisons with the untrained baselines (the report's gate).
        "baseline_gate": baseline_gate,
        "seconds_per_component": {ex.node_id: round(ex.seconds, 1) for ex in executions},
        "states": {ex.node_id: ex.state for ex in executions},
        "wall_s": round(wall_s, 1),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "config": config,
    }


def write_report(executions: list[NodeExecution], summary: dict[str, Any], out_dir: str) -> str | None:
    """Copies the RunReport step's page to `out_dir`/report.html with the time per component filled in;
    returns its path, or None when the step did not run (e.g. an earlier step failed)."""
    from components.report.html import with_timings

    uri = output_uri(executions, RUN_REPORT_ID, "report")
    if not uri or not os.path.exists(uri):
        return None
    with open(uri, encoding="utf-8") as f:
        page = with_timings(f.read(), summary["seconds_per_component"], summary["states"])
    path = os.path.join(out_dir, F.REPORT_FILE)
    write_text_atomic(path, page)
    return path


def write_plots(summary: dict[str, Any], history: dict[str, list], out_dir: str) -> list[str]:
    """Training curves, and a 2-D map of the eval split's embeddings from the pipeline's embedding index."""
    import numpy as np

    from components.report.figures import plot_embedding_map, plot_training_curves
    from components.report.html import baseline_scores, knn_references
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
