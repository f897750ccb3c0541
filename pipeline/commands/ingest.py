"""`simsiam-tfx ingest`: ImageExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator with LocalDagRunner,
then a summary."""

from __future__ import annotations

import argparse
import os
import sys
import time

INGESTION_FILE = "ingestion.json"  # in OUT: what was ingested, rejected and ignored, and the anomalies
HELP = "validate and ingest images into tf.Examples (+ statistics, schema and its anomalies); writes OUT/ingestion.json"
SCHEMA_HELP = (
    "a curated schema.pbtxt (TFDV Schema text proto, e.g. a reviewed copy of an earlier run's "
    "OUT/pipeline_root/SchemaGen/schema/<n>/schema.pbtxt): TFX's ImportSchemaGen uses it instead of inferring "
    "one, and the ExampleValidator reports where the data departs from it. An anomaly is a warning: one "
    "line each at the end, and in the output's JSON; the command goes on (its examples passed the per-file "
    "checks; a new class is often deliberate)"
)
DESCRIPTION = """\
Runs the ImageExampleGen, StatisticsGen, SchemaGen (ImportSchemaGen with --schema) and ExampleValidator
components with LocalDagRunner on your images:
  --data-dir DIR           a folder of class folders (DIR/<class>/<image>.jpg|.jpeg|.png): labelled
  --unlabeled-dir DIR      every JPEG/PNG below DIR, at any depth: unlabelled (alone or with --data-dir)
  --examples GLOB --image-key KEY [--label-key KEY]
                           TFRecord files of tf.Examples holding encoded images
  --tfds NAME              a TFDS image-classification dataset

Every image is decoded before it becomes an example; rejected files (and records, by file:index)
are skipped and listed with a reason. Labels are the positions of the class names in sorted order.
The train/eval split hashes the image id (its path under DIR; file:index for records), so an image
lands in the same split on every run and machine; byte-identical copies all take one split.

Writes OUT/ingestion.json:
  {"classes": [...], "counts": {"train": {class: n}, "eval": {class: n}},
   "unlabeled": {"train": n, "eval": n}, "duplicates": {"groups": n, "images": n, "examples": [...]},
   "rejected": [{"path": ..., "reason": ...}], "ignored": [{"path": ..., "rule": ...}],
   "anomalies": [{"split": ..., "feature": ..., "short": ..., "description": ...}]}
(every file below the folders is in one of counts, unlabeled, rejected or ignored: hidden files and
folders, and files directly in a --data-dir, are ignored; names that are not UTF-8 get an escaped id
such as caf\\xe9.jpg)
and keeps the TFX outputs in OUT/pipeline_root and ML Metadata in OUT/metadata.sqlite (a second run
with the same OUT reuses the cached results unless a file changed: any file added, removed or
rewritten at any depth re-runs ingestion).

Data anomalies (the ExampleValidator comparing each split with the curated --schema; without it, the
train split with the schema inferred from it, which has nothing to drift from) are warnings: one line
each, "data anomaly (split S) FEATURE: ...", before the "done" line; they do not change the exit
status.

Exit status: 0 done; 1 the data cannot be ingested (the message says why); 2 bad arguments, among them an
--output that is a file or under one, cannot be written, is inside a photo folder or holds one, or is in
use by another `ingest` or `run` (OUT/simsiam-tfx.lock names it; one command per output folder).
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from pipeline.configs import add_input_arguments, add_workers_argument

    add_input_arguments(p)
    p.add_argument("--output", default="runs/ingest", help="output folder (default: %(default)s)")
    p.add_argument("--eval-percent", type=int, default=15, help="share of images in eval, 1-99 (default: 15)")
    p.add_argument(
        "--max-rejected-fraction",
        type=float,
        default=0.1,
        help="fail when a larger share of the files is rejected (default: 0.1)",
    )
    p.add_argument("--schema", metavar="SCHEMA.pbtxt", help=SCHEMA_HELP)
    add_workers_argument(p)
    p.add_argument("--pipeline-name", default="simsiam-ingest")
    p.add_argument("--no-cache", action="store_true", help="run every component again")
    p.add_argument("--verbose", action="store_true", help="show TFX, Beam and TensorFlow logs")


def _error(message: str, status: int) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return status


def _write_ingestion_json(out: str, report: dict, write_report) -> str | None:
    """Writes OUT/ingestion.json, whole or not at all; returns why it could not (one line), or None."""
    path = os.path.join(out, INGESTION_FILE)
    try:
        write_report(path, report)
    except OSError as err:
        return f"cannot write {path}: {err.strerror or err}; the previous file, if any, is unchanged"
    return None


def schema_problem(schema: str | None) -> str | None:
    """Why `--schema` cannot be read (one line, before TensorFlow loads), or None."""
    if schema and "://" not in schema and not os.path.isfile(schema):
        return f"--schema {schema} is not a file (give a schema.pbtxt)"
    return None


def describe_listing(listing) -> str:
    """'N files in C classes under DIR (U unlabelled)' for the start line of `ingest` and `run`."""
    unlabeled = f", {listing.unlabeled:,} of them unlabelled" if listing.unlabeled else ""
    return (
        f"{len(listing.files) + len(listing.rejected):,} files{unlabeled} in {len(listing.classes)} classes "
        f"under {listing.root}"
    )


def run(args: argparse.Namespace) -> int:
    from components.ingest.files import DataError
    from pipeline import preflight
    from pipeline.configs import input_from_args

    if not 1 <= args.eval_percent <= 99:
        return _error(f"--eval-percent must be from 1 to 99, got {args.eval_percent}", 2)
    if not 0.0 <= args.max_rejected_fraction <= 1.0:
        return _error(f"--max-rejected-fraction must be in [0, 1], got {args.max_rejected_fraction}", 2)
    if problem := schema_problem(args.schema):
        return _error(problem, 2)
    try:
        image_input = input_from_args(args)
        out = preflight.check_output(args.output, {"--data-dir": args.data_dir, "--unlabeled-dir": args.unlabeled_dir})
    except (ValueError, preflight.PreflightError) as err:
        return _error(str(err), 2)
    total, source = None, image_input.describe()
    try:  # fail in a second, before TensorFlow loads, when a folder cannot work
        listing = image_input.listing()
    except DataError as err:
        return _error(str(err), 1)
    if listing is not None:
        total = len(listing.files)  # what the workers will validate
        source = describe_listing(listing)
    try:
        _lock = preflight.claim_run_folder(out, "simsiam-tfx ingest")  # held until run() returns or the process ends
    except preflight.PreflightError as err:
        return _error(str(err), 2)
    print(f"simsiam-tfx ingest: {source} -> {out}", flush=True)

    from pipeline.local_runner import quiet_logs

    quiet_logs(args.verbose)
    from components.ingest.anomalies import anomaly_lines
    from components.ingest.ingestion_record import summary_table, write_report
    from pipeline.ingestion import run_ingestion

    start = time.time()
    try:
        report = run_ingestion(
            image_input,
            out,
            eval_percent=args.eval_percent,
            max_rejected_fraction=args.max_rejected_fraction,
            schema_path=os.path.abspath(args.schema) if args.schema and "://" not in args.schema else args.schema,
            workers=args.workers,
            pipeline_name=args.pipeline_name,
            enable_cache=not args.no_cache,
            total_files=total,
        )
    except DataError as err:
        if err.report:  # show what was rejected, then why it failed
            if problem := _write_ingestion_json(out, err.report, write_report):
                print(problem, flush=True)
            print(f"\n{summary_table(err.report)}", flush=True)
        return _error(str(err), 1)
    print(f"\n{summary_table(report)}")
    for line in anomaly_lines(report["anomalies"]):
        print(f"warning: {line}", flush=True)
    if problem := _write_ingestion_json(out, report, write_report):
        return _error(problem, 1)
    print(f"done in {time.time() - start:.0f}s: {os.path.join(out, INGESTION_FILE)}")
    return 0
