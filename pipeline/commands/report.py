"""`simsiam-tfx report`: the run report of an existing run folder, from its ML Metadata and artifacts."""

from __future__ import annotations

import argparse
import json
import os
import sys

from components.report import DEFAULT_QUERIES_PER_CLASS
from pipeline import component_ids as ids

HELP = "write the run report (report.html) of an existing `simsiam-tfx run` folder"
DESCRIPTION = """\
Builds report.html from the latest pipeline run recorded in RUN/metadata.sqlite, the way the
pipeline's RunReport step does (gate, quality vs the untrained baselines: random init, random
filters, colour histograms; per-class accuracy, curves, t-SNE maps, nearest-neighbour grids,
rejected files, time per component). For runs made before that step existed, or to keep the
figures as files (--figures DIR). Nothing in RUN changes unless --to points there.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN", help="a `simsiam-tfx run --output` folder (has metadata.sqlite)")
    p.add_argument("--to", metavar="FILE.html", help="where to write the page (default: RUN/report.html)")
    p.add_argument("--figures", metavar="DIR", help="also keep the figures as files in DIR")
    p.add_argument(
        "--queries-per-class",
        type=int,
        default=DEFAULT_QUERIES_PER_CLASS,
        help="neighbour-grid queries per class (default: %(default)s)",
    )


def _outputs() -> tuple[dict[str, tuple[str, str]], dict[str, tuple[str, str]]]:
    """(needed, optional) outputs of the run the page is built from, {artifact: (node id, output key)}; the
    optional ones are absent without labels (the probe) or in a run made before anomalies were shown.
    Built when the command runs: the ExampleGen's id comes with TFX."""
    from components.ingest.component import EXAMPLE_GEN_ID

    needed = {
        "examples": (EXAMPLE_GEN_ID, "examples"),
        "transform_graph": (ids.TRANSFORM_ID, "transform_graph"),
        "simsiam_model": (ids.SIMSIAM_TRAINER_ID, "model"),
        "simsiam_run": (ids.SIMSIAM_TRAINER_ID, "model_run"),
        "evaluation": (ids.EVALUATOR_ID, "evaluation"),
        "embedding_index": (ids.EMBEDDING_INDEXER_ID, "embedding_index"),
    }
    optional = {"probe_run": (ids.PROBE_TRAINER_ID, "model_run"), "anomalies": (ids.EXAMPLE_VALIDATOR_ID, "anomalies")}
    return needed, optional


def run(args: argparse.Namespace) -> int:
    from pipeline.local_runner import SUMMARY_FILE, quiet_logs, run_folder_paths

    metadata, _ = run_folder_paths(args.run_dir)
    summary_path = os.path.join(args.run_dir, SUMMARY_FILE)
    for path in (metadata, summary_path):
        if not os.path.exists(path):
            print(
                f"error: {path} not found: RUN must be the --output folder of a finished `simsiam-tfx run`",
                file=sys.stderr,
            )
            return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    quiet_logs(False)
    from components import features as F
    from components.ingest.component import EXAMPLE_GEN_ID
    from components.report.data import build_report
    from components.report.html import with_timings
    from pipeline.mlmd import latest_run, output_uri
    from serving.atomic import write_text_atomic

    with open(summary_path) as f:
        summary = json.load(f)
    executions = latest_run(metadata)
    needed, optional = _outputs()
    uris = {name: output_uri(executions, node, key) for name, (node, key) in {**needed, **optional}.items()}
    # no labels: the label-free gate's evaluation
    uris["evaluation"] = uris["evaluation"] or output_uri(executions, ids.LABEL_FREE_EVALUATOR_ID, "evaluation")
    missing = sorted(f"{needed[n][0]}.{needed[n][1]}" for n, uri in uris.items() if not uri and n in needed)
    if missing:
        print(f"error: the latest run in {metadata} has no {', '.join(missing)}: did it finish?", file=sys.stderr)
        return 1
    examples = next(ex.outputs["examples"][0] for ex in executions if ex.node_id == EXAMPLE_GEN_ID)
    split_names = json.loads(examples.properties["split_names"].string_value)
    index = next(ex.outputs["embedding_index"][0] for ex in executions if ex.node_id == ids.EMBEDDING_INDEXER_ID)
    projector = (
        index.custom_properties["projector_dir"].string_value if "projector_dir" in index.custom_properties else None
    )
    status = {**{k: summary.get(k) for k in ("blessed", "pushed", "serving_model_dir")}, "projector_dir": projector}
    config = summary["config"]
    page, data = build_report(
        uris,
        split_names,
        status,
        config["simsiam"],
        config["accuracy_floor"],
        args.queries_per_class,
        args.figures,
        profile=config.get("profile", ""),
    )
    page = with_timings(page, summary["seconds_per_component"], summary["states"])
    target = args.to or os.path.join(args.run_dir, F.REPORT_FILE)
    write_text_atomic(target, page)
    print(f"wrote {target}" + (f" and the figures in {args.figures}" if args.figures else ""))
    return 0
