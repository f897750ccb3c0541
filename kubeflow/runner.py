"""Compiles `pipeline.pipeline.create_pipeline(...)` into a KFP v2 / Vertex AI Pipelines job JSON.

The same pipeline as the local run; what differs is only deployment: every step runs in one
container image, the SimSiam Trainer alone asks for a GPU (or runs as a Vertex AI custom
training job with a GPU worker pool), and Beam steps may run on Dataflow.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import yaml
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx import v1 as tfx
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

from kubeflow.config import KubeflowOptions
from pipeline.component_ids import SIMSIAM_TRAINER_ID
from pipeline.configs import RunConfig
from pipeline.local_runner import LOCAL_BEAM_RUNNER, direct_running
from pipeline.pipeline import create_pipeline

ResourceSpec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec
gcp = tfx.extensions.google_cloud_ai_platform


def beam_pipeline_args(options: KubeflowOptions) -> list[str]:
    """DataflowRunner with `--dataflow` (workers run the same image), else Beam's FnApiRunner in the step
    (named, as locally: pipeline/local_runner.py says why not the DirectRunner), with `beam_workers`
    worker processes (0: one per core) or, for 1, in the step's own process (`direct_running`).

    Both name the image (`--sdk_container_image`). Dataflow's workers run it; the FnApiRunner ignores the
    flag (its workers are the step's own process or its subprocesses, in that image already), which is
    there because TFX looks for a dependency flag: without one, every TFX Beam executor first builds an
    sdist of TFX for remote workers (`tfx.utils.dependency_utils.make_beam_dependency_flags`), a few
    seconds and 49 MB of temporary files per step that nothing reads."""
    if not options.dataflow:
        mode, workers = direct_running(options.beam_workers)
        return [
            f"--runner={LOCAL_BEAM_RUNNER}",
            f"--direct_running_mode={mode}",
            f"--direct_num_workers={workers}",
            f"--sdk_container_image={options.image}",
        ]
    return [
        "--runner=DataflowRunner",
        f"--project={options.project}",
        f"--region={options.region}",
        f"--temp_location={options.beam_temp_location}",
        f"--machine_type={options.dataflow_machine_type}",
        f"--sdk_container_image={options.image}",
    ]


def trainer_resources(options: KubeflowOptions) -> ResourceSpec:
    """The platform config that makes Vertex AI Pipelines run a step on a GPU machine."""
    spec = ResourceSpec(accelerator=ResourceSpec.AcceleratorConfig(type=options.gpu_type, count=options.gpu_count))
    if options.trainer_cpu:
        spec.cpu_limit = options.trainer_cpu
    if options.trainer_memory_gb:
        spec.memory_limit = options.trainer_memory_gb
    return spec


def vertex_training_config(options: KubeflowOptions) -> dict[str, Any]:
    """custom_config entries that make TFX's Google Cloud Trainer run as a Vertex AI CustomJob.

    `options.workers` replicas: one pool of one replica (the chief), plus with more than one a second
    pool of `workers - 1`, as Vertex AI's distributed training takes them (pool 0 is the chief, pool 1
    the workers; Vertex AI sets TF_CONFIG in each replica). Every pool runs the image on the same GPU
    machine with no `command`: TFX's Vertex training client writes its own run_executor command into
    every pool (tfx/extensions/google_cloud_ai_platform/training_clients.py). With several replicas,
    `scheduling.restart_job_on_worker_restart` restarts the whole job when one replica restarts: a
    MultiWorkerMirroredStrategy job cannot go on with a replica that lost its state.
    """

    def pool(replicas: int) -> dict[str, Any]:
        return {
            "machine_spec": {
                "machine_type": options.training_machine_type,
                "accelerator_type": options.gpu_type,
                "accelerator_count": options.gpu_count,
            },
            "replica_count": replicas,
            "container_spec": {"image_uri": options.image},  # TFX replaces the command with its run_executor
        }

    job_spec: dict[str, Any] = {"worker_pool_specs": [pool(1)]}
    if options.workers > 1:
        job_spec["worker_pool_specs"].append(pool(options.workers - 1))
        job_spec["scheduling"] = {"restart_job_on_worker_restart": True}
    return {
        gcp.ENABLE_VERTEX_KEY: True,
        gcp.VERTEX_REGION_KEY: options.region,
        gcp.TRAINING_ARGS_KEY: {"project": options.project, "job_spec": job_spec},
    }


def vertex_trainer(options: KubeflowOptions) -> Callable[..., Any]:
    """A drop-in for `tfx.components.Trainer` in create_pipeline that adds the Vertex AI job settings."""
    extra = vertex_training_config(options)

    def build(*, custom_config: dict[str, Any] | None = None, **kwargs: Any) -> gcp.Trainer:
        return gcp.Trainer(custom_config={**(custom_config or {}), **extra}, **kwargs)

    return build


def build_pipeline(options: KubeflowOptions, config: RunConfig) -> tfx.dsl.Pipeline:
    """The pipeline of `simsiam-tfx run`, with Kubeflow's deployment settings attached."""
    pipeline = create_pipeline(
        pipeline_name=options.pipeline_name,
        pipeline_root=options.pipeline_root,
        config=config,
        serving_model_dir=options.serving_dir,
        image_input=options.image_input,
        beam_pipeline_args=beam_pipeline_args(options),
        enable_cache=options.enable_cache,
        simsiam_trainer_component=vertex_trainer(options) if options.vertex_training else None,
        baseline_strategy=tfx.dsl.experimental.LatestBlessedModelStrategy,
    )
    if not options.vertex_training:  # a custom job gets its GPU from its worker pool; its launcher step needs none
        trainer = next(c for c in pipeline.components if c.id == SIMSIAM_TRAINER_ID)
        trainer.with_platform_config(trainer_resources(options))
    return pipeline


def compile_pipeline(options: KubeflowOptions, config: RunConfig, output: str) -> dict[str, Any]:
    """Writes the compiled pipeline to `output` and returns it as a dict.

    Target `vertex`: the Vertex AI PipelineJob that KubeflowV2DagRunner writes (`pipelineSpec` plus
    `runtimeConfig.gcsOutputDirectory`). Target `kfp`: the bare KFP v2 package, that job's PipelineSpec
    with the pipeline root as its `defaultPipelineRoot` (pipeline_spec.proto), the file that
    `kfp.Client().upload_pipeline` / `create_run_from_pipeline_package` and
    `kfp.components.load_component_from_file` take.
    """
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(default_image=options.image),
        output_dir=os.path.dirname(os.path.abspath(output)),
        output_filename=os.path.basename(output),
    )
    job = runner.run(build_pipeline(options, config))
    if options.target == "vertex":
        return job
    package = {**job["pipelineSpec"], "defaultPipelineRoot": options.pipeline_root}
    with open(output, "w", encoding="utf-8") as f:
        yaml.safe_dump(package, f, sort_keys=True)
    return package
