"""`simsiam-tfx compile-kubeflow`: the pipeline as a KFP v2 / Vertex AI Pipelines job JSON."""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from kubeflow.config import GPU_TYPES, KFP_GPU, TARGETS, ConfigError, KubeflowOptions
from pipeline.configs import add_recipe_arguments, config_from_args

HELP = "compile the pipeline into a Kubeflow Pipelines v2 / Vertex AI Pipelines JSON"
DESCRIPTION = f"""\
Compiles the same pipeline as `simsiam-tfx run` with TFX's KubeflowV2DagRunner. Every step runs
in --image (build it from kubeflow/Dockerfile); only the SimSiam Trainer asks for a GPU.
Nothing is contacted: the output is a file to submit with `simsiam-tfx submit-vertex` (the default,
--target vertex: a Vertex AI PipelineJob .json) or `simsiam-tfx submit-kfp` (--target kfp: the bare
KFP v2 package .yaml for open-source Kubeflow Pipelines, roots in gs://, s3:// or minio://), and to
execute here with `simsiam-tfx run-compiled`.

examples:
  simsiam-tfx compile-kubeflow --output simsiam.json --pipeline-root gs://BUCKET/simsiam \\
      --image us-docker.pkg.dev/PROJECT/REPO/simsiam-tfx:0.1.0 --data-dir gs://BUCKET/flower_photos \\
      --project PROJECT --region us-central1 --gpu-type NVIDIA_L4 --gpu-count 1 --dataflow
  simsiam-tfx compile-kubeflow --target kfp --output simsiam.yaml --pipeline-root minio://mlpipeline/simsiam \
      --image registry.example.com/simsiam-tfx:0.1.0 --data-dir minio://mlpipeline/flower_photos

GPU types: {", ".join(GPU_TYPES)}
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", required=True, help="the pipeline job file to write (.json)")
    p.add_argument(
        "--target",
        choices=TARGETS,
        default="vertex",
        help="vertex: a Vertex AI PipelineJob (submit-vertex); kfp: the bare KFP v2 package that open-source "
        "Kubeflow Pipelines uploads (submit-kfp), roots in gs://, s3:// or minio:// (default: %(default)s)",
    )
    p.add_argument(
        "--pipeline-root", required=True, help="BUCKET URI where the runs keep their artifacts (gs://; kfp: s3://...)"
    )
    p.add_argument("--image", required=True, help="the pipeline image (kubeflow/Dockerfile), pushed to a registry")
    from pipeline.configs import add_input_arguments

    add_input_arguments(p)  # gs:// paths here; --tfds-data-dir defaults to PIPELINE_ROOT/tensorflow_datasets
    p.add_argument("--serving-model-dir", help="gs:// folder the Pusher writes to (default: PIPELINE_ROOT/serving)")
    p.add_argument("--pipeline-name", default="simsiam-tfx")
    p.add_argument("--project", help="Google Cloud project (needed by --dataflow and --vertex-training)")
    p.add_argument("--region", help="Google Cloud region, e.g. us-central1 (same)")
    gpu = p.add_argument_group("SimSiam Trainer GPU")
    gpu.add_argument(
        "--gpu-type",
        help=f"Vertex AI accelerator name (default: NVIDIA_L4); --target kfp: the node's Kubernetes resource "
        f"(default: {KFP_GPU})",
    )
    gpu.add_argument("--gpu-count", type=int, default=1, help="(default: %(default)s)")
    gpu.add_argument("--trainer-cpu", type=float, help="vCPU limit of the SimSiam Trainer step")
    gpu.add_argument("--trainer-memory", type=float, metavar="GB", help="memory limit of the SimSiam Trainer step")
    gpu.add_argument(
        "--vertex-training",
        action="store_true",
        help="run the SimSiam Trainer as a Vertex AI custom training job with a GPU worker pool",
    )
    gpu.add_argument("--machine-type", help="that job's machine (default: the smallest that holds the GPUs)")
    gpu.add_argument(
        "--workers",
        type=int,
        default=1,
        help="that job's replicas, each with the GPUs: a chief pool of 1 and a worker pool of N-1 (default: 1)",
    )
    beam = p.add_argument_group("Beam steps")
    beam.add_argument(
        "--dataflow",
        action="store_true",
        help="run ExampleGen, StatisticsGen, Transform, "
        "Evaluator on Dataflow (default: Beam's DirectRunner inside each step)",
    )
    beam.add_argument(
        "--beam-workers",
        type=int,
        default=0,
        metavar="N",
        help="without --dataflow: Beam worker processes inside each Beam step, 0 for one per core of the "
        "step's machine, 1 to run in the step's own process (faster for small data) (default: %(default)s)",
    )
    beam.add_argument("--dataflow-machine-type", default="n1-standard-4", help="(default: %(default)s)")
    beam.add_argument("--temp-location", help="gs:// Dataflow temp folder (default: PIPELINE_ROOT/tmp)")
    run = p.add_argument_group("run profile (as for `simsiam-tfx run`)")
    run.add_argument("--profile", choices=["smoke", "cpu", "gpu"], default="gpu", help="(default: %(default)s)")
    add_recipe_arguments(run)
    p.add_argument("--no-cache", action="store_true", help="compile with step caching off")
    p.add_argument("--verbose", action="store_true", help="show TFX/TensorFlow logs")


def options_from_args(args: argparse.Namespace) -> KubeflowOptions:
    """Raises ConfigError (one line) on a bad option; imports nothing heavy."""
    options = KubeflowOptions(
        pipeline_root=args.pipeline_root,
        image=args.image,
        data_dir=args.data_dir,
        tfds_name=args.tfds,
        tfds_data_dir=args.tfds_data_dir,
        unlabeled_dir=args.unlabeled_dir,
        examples=args.examples,
        image_key=args.image_key,
        label_key=args.label_key,
        serving_model_dir=args.serving_model_dir,
        pipeline_name=args.pipeline_name,
        project=args.project,
        region=args.region,
        gpu_type=args.gpu_type or (KFP_GPU if args.target == "kfp" else "NVIDIA_L4"),
        gpu_count=args.gpu_count,
        trainer_cpu=args.trainer_cpu,
        trainer_memory_gb=args.trainer_memory,
        dataflow=args.dataflow,
        beam_workers=args.beam_workers,
        dataflow_machine_type=args.dataflow_machine_type,
        temp_location=args.temp_location,
        vertex_training=args.vertex_training,
        machine_type=args.machine_type,
        workers=args.workers,
        enable_cache=not args.no_cache,
        target=args.target,
    )
    if "://" in args.output:
        raise ConfigError(f"--output is a local file to write, not {args.output!r}")
    yaml_file = args.output.lower().endswith((".yaml", ".yml"))
    if args.target == "vertex" and yaml_file:
        raise ConfigError("--output must be a .json file: submit-vertex reads the job with its runtime config")
    if args.target == "kfp" and not yaml_file:
        raise ConfigError("--target kfp: --output must be a .yaml file, the package kfp.Client uploads")
    if os.path.isdir(args.output):
        raise ConfigError(f"--output {args.output} is a folder; give a file name such as simsiam.json")
    return options


def store_note(root: str) -> str | None:
    """What a root outside gs:// needs before the steps can use it, or None. TFX's file I/O is
    tf.io.gfile; the image's TensorFlow (requirements.lock) raises UnimplementedError for s3:// and
    minio:// (checked with this environment's TensorFlow, the same lock)."""
    if root.startswith("s3://"):
        return (
            "s3:// is not a file system of the image's TensorFlow (gs:// is): add tensorflow-io, whose S3 "
            "file system the steps then use (S3_ENDPOINT for MinIO), to the image before running this"
        )
    if root.startswith("minio://"):
        return (
            "minio:// is no TensorFlow file system, so the TFX steps cannot write their outputs there; "
            "for MinIO compile with s3:// (S3_ENDPOINT set to MinIO, tensorflow-io in the image)"
        )
    return None


def run(args: argparse.Namespace) -> int:
    try:
        options = options_from_args(args)
        config = config_from_args(args, args.profile)  # e.g. an --eval-size above the stored size
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # google.api_core's notices about Python 3.10 and old google-cloud-storage: not actionable here.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")
    from absl import logging as absl_logging

    from kubeflow.runner import compile_pipeline

    absl_logging.set_verbosity(absl_logging.INFO if args.verbose else absl_logging.WARNING)
    compiled = compile_pipeline(options, config, args.output)
    tasks = compiled.get("pipelineSpec", compiled)["root"]["dag"]["tasks"]
    where = (
        f"Vertex AI custom job on {options.workers} x {options.training_machine_type}"
        if options.vertex_training
        else "its pipeline step"
    )
    print(
        f"wrote {args.output} ({'KFP v2 package' if options.target == 'kfp' else 'Vertex AI PipelineJob'}): "
        f"{len(tasks)} steps, image {options.image}, root {options.pipeline_root}; "
        f"SimSiam Trainer: {options.gpu_count} x {options.gpu_type} ({where}); "
        f"Beam: {'Dataflow' if options.dataflow else 'DirectRunner'}"
    )
    if note := store_note(options.pipeline_root):
        print(f"note: {note}", file=sys.stderr)
    return 0
