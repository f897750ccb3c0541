"""`simsiam-tfx run-compiled`: executes a compiled KFP v2 pipeline here, step by step, as its containers would."""

from __future__ import annotations

import argparse
import os
import sys

HELP = "execute a pipeline compiled by compile-kubeflow on this machine, through its container entry points"
DESCRIPTION = """\
Runs every step of a compile-kubeflow file (Vertex AI job or bare KFP package) in DAG order, each
through the command and arguments written in it (TFX's Kubeflow V2 container entry point), with the
image's PYTHONPATH (kubeflow/Dockerfile) and a local folder, --store, standing in for the object
store: gs://BUCKET/PATH is read and written as STORE/gs/BUCKET/PATH (s3://, minio:// likewise).
Put the data where the compiled paths point, under --store. A Dataflow step runs with Beam's
DirectRunner, a Vertex AI training job as the executor its container runs; resolvers read the
earlier local runs (STORE/.../PIPELINE_ROOT/local_metadata.json). Every step runs (no cache).

example:
  simsiam-tfx compile-kubeflow --output p.json --pipeline-root gs://b/root --image IMAGE \\
      --data-dir gs://b/flower_photos --profile smoke
  mkdir -p store/gs/b && ln -s $PWD/flower_photos store/gs/b/flower_photos
  simsiam-tfx run-compiled --pipeline p.json --store store
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pipeline", required=True, help="the file compile-kubeflow wrote")
    p.add_argument("--store", required=True, help="local folder standing in for gs://, s3:// and minio://")


def run(args: argparse.Namespace) -> int:
    from kubeflow.local_executor import ExecutionError, load_pipeline

    try:
        load_pipeline(args.pipeline)
    except ExecutionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from kubeflow.local_executor import run_pipeline
    from pipeline.component_ids import PUSHER_ID

    def step(name: str, seconds: float, notes: list[str]) -> None:
        print(f"{name}: done in {seconds:.1f} s{'; ' + '; '.join(notes) if notes else ''}", flush=True)

    try:
        result = run_pipeline(args.pipeline, args.store, on_step=step)
    except ExecutionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    pushed = [
        a["metadata"].get("pushed_destination") for arts in result.outputs.get(PUSHER_ID, {}).values() for a in arts
    ]
    print(
        f"run {result.run_dir} finished: {len(result.seconds)} steps in {sum(result.seconds.values()):.0f} s; "
        f"pushed model: {pushed[0] if pushed else None}"
    )
    return 0
