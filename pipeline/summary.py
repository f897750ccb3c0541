"""`OUT/summary.json` and the figures next to it: the RunReport's `report.json` plus what only the run knows.

The RunReport step (components/report/) gathers the run's results once and writes them beside its page
as `report.json`; the summary is that data plus the run's timings, states, memory and config, and the
few facts ML Metadata holds that the step does not see (the candidate model, the index's path, the
ExampleValidator's anomalies). A run that failed before the step has no report.json: its summary says
what ran and how long it took. The figures beside it are the step's, copied, not drawn again.
"""

from __future__ import annotations

import os
from typing import Any

from components import features as F
from components.evaluate.baseline_gate import read_decision
from components.index.embedding_index import index_file
from components.json_files import read_json
from components.report.component import report_data_path
from pipeline.component_ids import (
    BASELINE_GATE_ID,
    EMBEDDING_INDEXER_ID,
    EXAMPLE_VALIDATOR_ID,
    LABEL_FREE_EVALUATOR_ID,
    PROBE_TRAINER_ID,
    PUSHER_ID,
    RUN_REPORT_ID,
    SIMSIAM_TRAINER_ID,
)
from pipeline.mlmd import NodeExecution, custom_int, output_uri
from serving.atomic import write_text_atomic


def report_data(executions: list[NodeExecution]) -> dict[str, Any]:
    """The RunReport's `report.json` (components/report/data.py `build_report`), or {} when it did not run."""
    uri = output_uri(executions, RUN_REPORT_ID, "report")
    return read_json(report_data_path(uri)) if uri else {}


def build_summary(
    executions: list[NodeExecution], peak_rss_mb: float, wall_s: float, config: dict[str, Any]
) -> dict[str, Any]:
    from tfx.utils import path_utils

    from components.ingest.anomalies import read_all_splits

    label_free_uri = output_uri(executions, LABEL_FREE_EVALUATOR_ID, "evaluation")
    gate_id = LABEL_FREE_EVALUATOR_ID if label_free_uri else BASELINE_GATE_ID
    blessed = custom_int(executions, gate_id, "blessing", "blessed") == 1
    candidate_uri = output_uri(executions, SIMSIAM_TRAINER_ID if label_free_uri else PROBE_TRAINER_ID, "model")
    pushed = custom_int(executions, PUSHER_ID, "pushed_model", "pushed") == 1
    pushed_uri = None
    for ex in executions:
        if ex.node_id == PUSHER_ID and ex.outputs.get("pushed_model"):
            props = ex.outputs["pushed_model"][0].custom_properties
            pushed_uri = props["pushed_destination"].string_value if "pushed_destination" in props else None
    report = report_data(executions)
    # Read from the BaselineGate's own artifact, as the anomalies below: a run that fails after the gate
    # (the index's recall gate, the RunReport) has no report.json, yet its verdict and reasons stand.
    baseline_gate = read_decision(output_uri(executions, BASELINE_GATE_ID, "blessing")) or None
    return {
        **report,
        "blessed": blessed,
        "pushed": pushed,
        "serving_model_dir": pushed_uri if pushed else None,
        # The model the gate judged, pushed or not: a SavedModel `embed` and `search` take as --model.
        "candidate_model_dir": path_utils.serving_model_path(candidate_uri) if candidate_uri else None,
        # Why the gate did not bless, in plain words ([] when it did, or did not run).
        "gate_reasons": [] if blessed else (report.get("label_free") or baseline_gate or {}).get("reasons", []),
        "embedding_index": index_file(output_uri(executions, EMBEDDING_INDEXER_ID, "embedding_index")),
        # With labels: the BaselineGate's comparisons with the untrained baselines (the report's gate).
        "baseline_gate": baseline_gate,
        "seconds_per_component": {ex.node_id: round(ex.seconds, 1) for ex in executions},
        "states": {ex.node_id: ex.state for ex in executions},
        "wall_s": round(wall_s, 1),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "config": config,
        # ExampleValidator's findings against the schema (a warning each: components/ingest/anomalies.py).
        # Read from its artifact, not report.json, so a run that fails after it still shows them.
        "anomalies": read_all_splits(output_uri(executions, EXAMPLE_VALIDATOR_ID, "anomalies")),
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


def copy_figures(executions: list[NodeExecution], out_dir: str) -> list[str]:
    """Copies the RunReport step's figures (training curves, t-SNE map, neighbour grid: the ones its page
    shows, components/report/data.py `draw_figures`) into `out_dir`; returns their paths there. The run
    has one set of figures, drawn once by that step; [] when the step did not run."""
    from tfx.dsl.io import fileio

    from components.report.component import figures_dir

    uri = output_uri(executions, RUN_REPORT_ID, "report")
    folder = figures_dir(uri) if uri else None
    if not folder or not fileio.exists(folder):
        return []
    copied = []
    for name in sorted(fileio.listdir(folder)):
        copied.append(os.path.join(out_dir, name))
        fileio.copy(f"{folder}/{name}", copied[-1], overwrite=True)
    return copied
