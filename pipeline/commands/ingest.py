"""`simsiam-tfx ingest`: ImageExampleGen -> StatisticsGen -> SchemaGen with LocalDagRunner, then a summary."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time

HELP = "validate and ingest images into tf.Examples (+ statistics and schema); writes OUT/ingestion.json"
DESCRIPTION = """\
Runs the ImageExampleGen, StatisticsGen and SchemaGen components with LocalDagRunner on a folder of
class folders (DIR/<class>/<image>.jpg|.jpeg|.png, the flower_photos layout) or a TFDS dataset.

Every file is decoded before it becomes an example; rejected files are skipped and listed with a
reason. Labels are the positions of the class names in sorted order. The train/eval split hashes
the image id (its path under DIR), so a file lands in the same split on every run and machine.

Writes OUT/ingestion.json:
  {"classes": [...], "counts": {"train": {class: n}, "eval": {class: n}},
   "rejected": [{"path": ..., "reason": ...}], "ignored": [{"path": ..., "rule": ...}]}
(every file below DIR is in one of counts, rejected or ignored: hidden files and folders, and files
directly in DIR, are ignored; names that are not UTF-8 get an escaped id such as caf\\xe9.jpg)
and keeps the TFX outputs in OUT/pipeline_root and ML Metadata in OUT/metadata.sqlite (a second run
with the same OUT reuses the cached results unless a file changed: any file added, removed or
rewritten at any depth re-runs ingestion).

Exit status: 0 done; 1 the data cannot be ingested (the message says why); 2 bad arguments.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data-dir", help="a folder of class sub-folders of JPEG/PNG images")
    src.add_argument("--tfds", metavar="NAME", help="a TFDS image-classification dataset, e.g. tf_flowers "
                                                   "(downloaded on first use: needs internet)")
    p.add_argument("--tfds-data-dir", help="where TFDS keeps its data (default: ~/tensorflow_datasets)")
    p.add_argument("--output", default="runs/ingest", help="output folder (default: %(default)s)")
    p.add_argument("--eval-percent", type=int, default=15, help="share of images in eval, 1-99 (default: 15)")
    p.add_argument("--max-rejected-fraction", type=float, default=0.1,
                   help="fail when a larger share of the files is rejected (default: 0.1)")
    p.add_argument("--workers", type=int, default=2, help="Beam worker processes (default: 2)")
    p.add_argument("--pipeline-name", default="simsiam-ingest")
    p.add_argument("--no-cache", action="store_true", help="run every component again")
    p.add_argument("--verbose", action="store_true", help="show TFX, Beam and TensorFlow logs")


class FileProgress:
    """Prints how many files the ExampleGen's workers have validated (they write counts to a folder)."""

    def __init__(self, total: int | None, interval_s: float = 2.0, printer=print):
        from components.ingest.executor import PROGRESS_DIR_ENV

        self.env, self.total, self.interval_s, self.printer = PROGRESS_DIR_ENV, total, interval_s, printer
        self._dir = tempfile.TemporaryDirectory(prefix="ingest-progress-")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._last = 0

    def count(self) -> int:
        n = 0
        for name in os.listdir(self._dir.name):
            try:
                with open(os.path.join(self._dir.name, name)) as f:
                    n += int(f.read() or 0)
            except (OSError, ValueError):
                pass  # a temporary file being renamed
        return n

    def poll(self) -> None:
        n = self.count()
        if n != self._last:
            self._last = n
            of = f" of {self.total:,}" if self.total else ""
            self.printer(f"           validated {n:,}{of} files", flush=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.poll()

    def __enter__(self) -> FileProgress:
        os.environ[self.env] = self._dir.name  # Beam's worker processes inherit it
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.poll()
        os.environ.pop(self.env, None)
        self._dir.cleanup()


def _error(message: str, status: int) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return status


def run(args: argparse.Namespace) -> int:
    from components.ingest.files import DataError, check_listing, list_image_folder

    if not 1 <= args.eval_percent <= 99:
        return _error(f"--eval-percent must be from 1 to 99, got {args.eval_percent}", 2)
    if not 0.0 <= args.max_rejected_fraction <= 1.0:
        return _error(f"--max-rejected-fraction must be in [0, 1], got {args.max_rejected_fraction}", 2)
    total = None
    if args.data_dir:
        try:  # fail in a second, before TensorFlow loads, when the folder cannot work
            listing = list_image_folder(os.path.abspath(args.data_dir))
            check_listing(listing)
        except DataError as err:
            return _error(str(err), 1)
        total = len(listing.files)  # what the workers will validate
        source = f"{total + len(listing.rejected):,} files in {len(listing.classes)} classes under {listing.root}"
    else:
        source = f"TFDS dataset {args.tfds}"
    out = os.path.abspath(args.output)
    print(f"simsiam-tfx ingest: {source} -> {out}", flush=True)

    from pipeline.local_runner import quiet_logs

    quiet_logs(args.verbose)
    from tfx import v1 as tfx

    from components.ingest.component import EXAMPLE_GEN_ID
    from components.ingest.report import read_report, summary_table, write_report
    from pipeline.ingestion import ingestion_components
    from pipeline.local_runner import beam_pipeline_args, latest_artifact_uri, metadata_connection, run_local
    from pipeline.progress import ComponentProgress

    os.makedirs(out, exist_ok=True)
    metadata_path = os.path.join(out, "metadata.sqlite")
    components = ingestion_components(
        data_dir=os.path.abspath(args.data_dir) if args.data_dir else None, tfds_name=args.tfds,
        tfds_data_dir=args.tfds_data_dir, eval_percent=args.eval_percent,
        max_rejected_fraction=args.max_rejected_fraction,
    )
    pipeline = tfx.dsl.Pipeline(
        pipeline_name=args.pipeline_name, pipeline_root=os.path.join(out, "pipeline_root"), components=components,
        enable_cache=not args.no_cache, metadata_connection_config=metadata_connection(metadata_path),
        beam_pipeline_args=beam_pipeline_args(args.workers),
    )
    start = time.time()
    try:
        with ComponentProgress(metadata_path), FileProgress(total):
            run_local(pipeline)
    except DataError as err:
        if err.report:  # show what was rejected, then why it failed
            write_report(os.path.join(out, "ingestion.json"), err.report)
            print(f"\n{summary_table(err.report)}", flush=True)
        return _error(str(err), 1)
    report = read_report(latest_artifact_uri(metadata_path, EXAMPLE_GEN_ID))
    write_report(os.path.join(out, "ingestion.json"), report)
    print(f"\n{summary_table(report)}")
    print(f"done in {time.time() - start:.0f}s: {os.path.join(out, 'ingestion.json')}")
    return 0

