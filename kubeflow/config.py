"""Deployment options for Kubeflow Pipelines v2 / Vertex AI, validated before any compile work.

Pure Python (no TensorFlow/TFX import), so a bad flag fails in well under a second with one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Vertex AI accelerator names (google.cloud.aiplatform_v1.types.AcceleratorType) -> the GPU counts
# Vertex AI offers for each, with the machine type a custom training job needs for that count.
GPU_MACHINES: dict[str, dict[int, str]] = {
    "NVIDIA_TESLA_T4": {1: "n1-standard-8", 2: "n1-standard-16", 4: "n1-standard-32"},
    "NVIDIA_TESLA_P4": {1: "n1-standard-8", 2: "n1-standard-16", 4: "n1-standard-32"},
    "NVIDIA_TESLA_P100": {1: "n1-standard-8", 2: "n1-standard-16", 4: "n1-standard-32"},
    "NVIDIA_TESLA_V100": {1: "n1-standard-8", 2: "n1-standard-16", 4: "n1-standard-32", 8: "n1-standard-64"},
    "NVIDIA_L4": {1: "g2-standard-8", 2: "g2-standard-24", 4: "g2-standard-48", 8: "g2-standard-96"},
    "NVIDIA_TESLA_A100": {
        1: "a2-highgpu-1g",
        2: "a2-highgpu-2g",
        4: "a2-highgpu-4g",
        8: "a2-highgpu-8g",
        16: "a2-megagpu-16g",
    },
    "NVIDIA_A100_80GB": {1: "a2-ultragpu-1g", 2: "a2-ultragpu-2g", 4: "a2-ultragpu-4g", 8: "a2-ultragpu-8g"},
    "NVIDIA_H100_80GB": {1: "a3-highgpu-1g", 2: "a3-highgpu-2g", 4: "a3-highgpu-4g", 8: "a3-highgpu-8g"},
    "NVIDIA_H100_MEGA_80GB": {8: "a3-megagpu-8g"},
    "NVIDIA_H200_141GB": {8: "a3-ultragpu-8g"},
}
GPU_TYPES: tuple[str, ...] = tuple(GPU_MACHINES)

_PIPELINE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")  # Vertex AI pipeline (and KFP) name rule
_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")  # Google Cloud project ID rule
_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")  # us-central1, europe-west4, ...
_MACHINE = re.compile(r"^[a-z][a-z0-9]*-[a-z0-9-]+$")  # n1-standard-8, g2-standard-8, ...
# [registry[:port]/]path[:tag][@sha256:digest], lower-case path as Docker requires.
_IMAGE = re.compile(
    r"^([a-zA-Z0-9.-]+(:[0-9]+)?/)?[a-z0-9]+([._/-][a-z0-9]+)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(@sha256:[0-9a-f]{64})?$"
)


# Where the compiled pipeline runs: a Vertex AI PipelineJob, or the bare KFP v2 package (PipelineSpec)
# that open-source Kubeflow Pipelines uploads and runs.
TARGETS = ("vertex", "kfp")
# The object stores TFX's file I/O and the KFP v2 backend both name: Vertex AI reads gs:// only;
# open-source KFP keeps artifacts in MinIO (minio://) or S3 (s3://) as well.
STORES = {"vertex": ("gs://",), "kfp": ("gs://", "s3://", "minio://")}
# A Kubernetes extended resource name, what open-source KFP puts in a pod's limits (nvidia.com/gpu).
_K8S_RESOURCE = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?/[a-z0-9]([a-z0-9_.-]*[a-z0-9])?$")
KFP_GPU = "nvidia.com/gpu"


class ConfigError(ValueError):
    """A deployment option that cannot work; the message is one line meant for the user."""


def _check_store(flag: str, value: str, target: str = "vertex") -> None:
    for scheme in STORES[target]:
        if value.startswith(scheme) and len(value) > len(scheme) and value[len(scheme)] != "/":
            return
    if target == "vertex":
        raise ConfigError(f"{flag} must be a gs://BUCKET/... URI that Vertex AI can reach, not {value!r}")
    raise ConfigError(f"{flag} must be a gs://, s3:// or minio://BUCKET/... URI the cluster can reach, not {value!r}")


def check_location(project: str | None, region: str | None) -> None:
    """The project ID and region formats (None: not given)."""
    if project is not None and not _PROJECT.match(project):
        raise ConfigError(f"--project {project!r} is not a Google Cloud project ID")
    if region is not None and not _REGION.match(region):
        raise ConfigError(f"--region {region!r} is not a Google Cloud region such as us-central1")


@dataclass(frozen=True)
class KubeflowOptions:
    """Everything `compile-kubeflow` needs besides the run profile; checked on construction."""

    pipeline_root: str
    image: str
    data_dir: str | None = None
    tfds_name: str | None = None
    tfds_data_dir: str | None = None  # default: PIPELINE_ROOT/tensorflow_datasets
    unlabeled_dir: str | None = None
    examples: str | None = None  # a gs:// glob of TFRecord files
    image_key: str = "image"
    label_key: str | None = None
    serving_model_dir: str | None = None  # default: PIPELINE_ROOT/serving
    pipeline_name: str = "simsiam-tfx"
    project: str | None = None
    region: str | None = None
    gpu_type: str = "NVIDIA_L4"
    gpu_count: int = 1
    trainer_cpu: float | None = None  # vCPU limit of the SimSiam Trainer step (Vertex picks the machine)
    trainer_memory_gb: float | None = None
    dataflow: bool = False
    beam_workers: int = 0  # without Dataflow: Beam worker processes in a step (0: one per core, 1: in the step)
    dataflow_machine_type: str = "n1-standard-4"
    temp_location: str | None = None  # Dataflow temp/staging, default: PIPELINE_ROOT/tmp
    vertex_training: bool = False  # SimSiam Trainer as a Vertex AI custom training job
    machine_type: str | None = None  # that job's machine, default: GPU_MACHINES[gpu_type][gpu_count]
    workers: int = 1  # that job's replicas: a chief, and workers - 1 in a second pool
    enable_cache: bool = True
    target: str = "vertex"  # TARGETS: a Vertex AI PipelineJob, or the bare KFP v2 package

    def __post_init__(self) -> None:
        validate(self)

    def _under_root(self, *parts: str) -> str:
        return "/".join([self.pipeline_root.rstrip("/"), *parts])

    @property
    def serving_dir(self) -> str:
        return self.serving_model_dir or self._under_root("serving")

    @property
    def tfds_dir(self) -> str | None:
        if not self.tfds_name:
            return None
        return self.tfds_data_dir or self._under_root("tensorflow_datasets")

    @property
    def image_input(self):
        """The `components.ingest.inputs.ImageInput` these options describe."""
        from components.ingest.inputs import ImageInput

        return ImageInput(
            data_dir=self.data_dir,
            unlabeled_dir=self.unlabeled_dir,
            examples=self.examples,
            image_key=self.image_key,
            label_key=self.label_key,
            tfds_name=self.tfds_name,
            tfds_data_dir=self.tfds_dir,
        )

    @property
    def beam_temp_location(self) -> str:
        return self.temp_location or self._under_root("tmp")

    @property
    def training_machine_type(self) -> str:
        return self.machine_type or GPU_MACHINES[self.gpu_type][self.gpu_count]


def validate(o: KubeflowOptions) -> None:
    """Raises ConfigError (one line) on the first option that cannot work."""
    if o.target not in TARGETS:
        raise ConfigError(f"--target must be one of {', '.join(TARGETS)}, not {o.target!r}")
    _check_store("--pipeline-root", o.pipeline_root, o.target)
    if not _IMAGE.match(o.image or "") or o.image.startswith(("/", ".")):
        raise ConfigError(
            f"--image must be a container image reference such as "
            f"us-docker.pkg.dev/PROJECT/REPO/simsiam-tfx:TAG, not {o.image!r}"
        )
    if not _PIPELINE_NAME.match(o.pipeline_name):
        raise ConfigError(
            f"--pipeline-name must be lower-case letters, digits and '-' (at most 128), not {o.pipeline_name!r}"
        )
    try:
        o.image_input  # noqa: B018 - validates the combination of input options
    except ValueError as err:
        raise ConfigError(str(err)) from None
    for flag, path in (("--data-dir", o.data_dir), ("--unlabeled-dir", o.unlabeled_dir), ("--examples", o.examples)):
        if path:
            _check_store(flag, path, o.target)
    if o.tfds_data_dir:
        _check_store("--tfds-data-dir", o.tfds_data_dir, o.target)
    if o.serving_model_dir:
        _check_store("--serving-model-dir", o.serving_model_dir, o.target)
    if o.target == "kfp":
        _check_kfp(o)
    else:
        _check_vertex_gpu(o)
    for flag, value in (("--trainer-cpu", o.trainer_cpu), ("--trainer-memory", o.trainer_memory_gb)):
        if value is not None and value <= 0:
            raise ConfigError(f"{flag} must be positive, not {value}")
    check_location(o.project, o.region)
    for flag, needed in (("--dataflow", o.dataflow), ("--vertex-training", o.vertex_training)):
        if needed and not (o.project and o.region):
            raise ConfigError(f"{flag} needs --project and --region")
    if o.beam_workers < 0:
        raise ConfigError(f"--beam-workers must be 0 (one per core) or more, not {o.beam_workers}")
    if o.dataflow and o.beam_workers:
        raise ConfigError("--beam-workers applies to the Beam steps run inside their pipeline step, not to --dataflow")
    if o.dataflow:
        _check_store("--temp-location", o.beam_temp_location)  # Dataflow stages in Cloud Storage only
    elif o.temp_location:
        _check_store("--temp-location", o.temp_location)
    for flag, machine in (("--dataflow-machine-type", o.dataflow_machine_type), ("--machine-type", o.machine_type)):
        if machine is not None and not _MACHINE.match(machine):
            raise ConfigError(f"{flag} {machine!r} is not a Compute Engine machine type such as n1-standard-8")
    if o.vertex_training and (o.trainer_cpu or o.trainer_memory_gb):
        raise ConfigError(
            "--trainer-cpu/--trainer-memory size the SimSiam Trainer's pipeline step; with "
            "--vertex-training choose the job's --machine-type instead"
        )
    if o.workers < 1:
        raise ConfigError(f"--workers must be at least 1 (the chief), not {o.workers}")
    if o.workers > 1 and not o.vertex_training:
        raise ConfigError(
            "--workers applies only with --vertex-training (a pipeline step is one machine; "
            "a Vertex AI custom job can have several)"
        )
    if o.machine_type and not o.vertex_training:
        raise ConfigError(
            "--machine-type applies only with --vertex-training (otherwise Vertex AI Pipelines "
            "picks the machine from the GPU request)"
        )


def _check_vertex_gpu(o: KubeflowOptions) -> None:
    if o.gpu_type not in GPU_MACHINES:
        raise ConfigError(f"unknown --gpu-type {o.gpu_type!r}; known: {', '.join(GPU_TYPES)}")
    counts = sorted(GPU_MACHINES[o.gpu_type])
    if o.gpu_count < 1:
        raise ConfigError(f"--gpu-count must be at least 1, not {o.gpu_count}")
    if o.gpu_count not in counts:
        raise ConfigError(
            f"Vertex AI offers {o.gpu_type} in counts of {', '.join(map(str, counts))}, not {o.gpu_count}"
        )


def _check_kfp(o: KubeflowOptions) -> None:
    """Open-source KFP: the GPU is a Kubernetes resource name; the Vertex AI training job is Vertex's."""
    if not _K8S_RESOURCE.match(o.gpu_type):
        raise ConfigError(
            f"--target kfp: --gpu-type is the Kubernetes resource the node offers, such as {KFP_GPU}, "
            f"not {o.gpu_type!r}"
        )
    if o.gpu_count < 1:
        raise ConfigError(f"--gpu-count must be at least 1, not {o.gpu_count}")
    if o.vertex_training:
        raise ConfigError("--vertex-training runs a Vertex AI job: compile it with --target vertex")
