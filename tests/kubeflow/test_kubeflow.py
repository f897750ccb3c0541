"""Kubeflow V2 / Vertex AI: the compiled pipeline JSON, the option checks, the image, submit-vertex."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.train.trainer_config import SimSiamTrainerConfig
from kubeflow.config import GPU_MACHINES, GPU_TYPES, ConfigError, KubeflowOptions
from pipeline.cli import main as cli_main

REPO = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).parent / "simsiam-tfx"
ROOT = "gs://simsiam-bucket/runs/flowers"
IMAGE = "us-docker.pkg.dev/my-project/pipelines/simsiam-tfx:0.1.0"
DATA = "gs://simsiam-bucket/data/flower_photos"
ORDER = [
    "ImageExampleGen",
    "StatisticsGen",
    "SchemaGen",
    "Transform",
    "SimSiamTrainer",
    "LinearProbeTrainer",
    "Evaluator",
    "BaselineGate",
    "Pusher",
]
BLESSING_RESOLVER = "latest_blessed_model_resolver-model-blessing-resolver"
MODEL_RESOLVER = "latest_blessed_model_resolver-model-resolver"
BASE_ARGS = ["compile-kubeflow", "--pipeline-root", ROOT, "--image", IMAGE]


def _compile(tmp_path: Path, *extra: str, name: str = "pipeline.json") -> dict[str, Any]:
    out = tmp_path / name
    assert cli_main([*BASE_ARGS, "--output", str(out), *extra]) == 0
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def gpu_dataflow(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The main deployment: data in gs://, a GPU on the SimSiam Trainer's step, Beam steps on Dataflow."""
    out = tmp_path_factory.mktemp("gpu_dataflow")
    return _compile(
        out,
        "--data-dir",
        DATA,
        "--project",
        "my-project",
        "--region",
        "europe-west4",
        "--gpu-type",
        "NVIDIA_L4",
        "--gpu-count",
        "1",
        "--dataflow",
        "--dataflow-machine-type",
        "n1-highmem-4",
    )


@pytest.fixture(scope="module")
def vertex_training(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The SimSiam Trainer as a Vertex AI custom job; TFDS input; Beam in each step (FnApiRunner)."""
    out = tmp_path_factory.mktemp("vertex_training")
    return _compile(
        out,
        "--tfds",
        "tf_flowers",
        "--project",
        "my-project",
        "--region",
        "us-central1",
        "--gpu-type",
        "NVIDIA_TESLA_T4",
        "--gpu-count",
        "2",
        "--vertex-training",
    )


def _tasks(job: dict[str, Any]) -> dict[str, Any]:
    return job["pipelineSpec"]["root"]["dag"]["tasks"]


def _executors(job: dict[str, Any]) -> dict[str, Any]:
    return job["pipelineSpec"]["deploymentSpec"]["executors"]


def _exec_property(job: dict[str, Any], task: str, name: str) -> str:
    return _tasks(job)[task]["inputs"]["parameters"][name]["runtimeValue"]["constantValue"]["stringValue"]


def _strings(value: Any) -> Iterator[str]:
    """Every string in the job, including those inside JSON-encoded exec properties."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value
        if value[:1] in "{[":
            try:
                yield from _strings(json.loads(value))
            except ValueError:
                pass


def _upstream(job: dict[str, Any]) -> dict[str, set[str]]:
    """Each task's direct upstream tasks: declared dependencies and the tasks whose outputs it reads."""
    edges = {}
    for name, task in _tasks(job).items():
        ups = set(task.get("dependentTasks", []))
        for artifact in task.get("inputs", {}).get("artifacts", {}).values():
            if "taskOutputArtifact" in artifact:
                ups.add(artifact["taskOutputArtifact"]["producerTask"])
        edges[name] = ups
    return edges


# ---- the compiled JSON ----------------------------------------------------------------------------


def test_every_component_is_present_with_its_exact_upstream_steps(gpu_dataflow: dict[str, Any]) -> None:
    assert _upstream(gpu_dataflow) == {
        "ImageExampleGen": set(),
        "StatisticsGen": {"ImageExampleGen"},
        "SchemaGen": {"StatisticsGen"},
        "ExampleValidator": {"StatisticsGen", "SchemaGen"},
        "Transform": {"ImageExampleGen", "SchemaGen"},
        "SimSiamTrainer": {"SchemaGen", "Transform"},
        "LinearProbeTrainer": {"SchemaGen", "Transform", "SimSiamTrainer"},
        BLESSING_RESOLVER: set(),
        MODEL_RESOLVER: {BLESSING_RESOLVER},
        "Evaluator": {"ImageExampleGen", "LinearProbeTrainer", MODEL_RESOLVER},
        "BaselineGate": {"Evaluator", "LinearProbeTrainer", "SimSiamTrainer"},
        "Pusher": {"BaselineGate", "LinearProbeTrainer"},
        "EmbeddingIndexer": {"ImageExampleGen", "LinearProbeTrainer"},
        "RunReport": {
            "ImageExampleGen",
            "ExampleValidator",  # its anomalies are on the page
            "Transform",
            "SimSiamTrainer",
            "LinearProbeTrainer",
            "Evaluator",
            "BaselineGate",
            "Pusher",
            "EmbeddingIndexer",
        },
    }


def test_unlabelled_images_compile_with_the_label_free_gate_instead_of_probe_and_evaluator(tmp_path: Path) -> None:
    job = _compile(tmp_path, "--unlabeled-dir", "gs://my-bucket/photos")
    upstream = _upstream(job)
    assert "LinearProbeTrainer" not in upstream and "Evaluator" not in upstream
    assert upstream["LabelFreeEvaluator"] == {"Transform", "SimSiamTrainer", MODEL_RESOLVER}
    assert upstream["Pusher"] == {"LabelFreeEvaluator", "SimSiamTrainer"}
    assert upstream["EmbeddingIndexer"] == {"ImageExampleGen", "SimSiamTrainer"}
    config = json.loads(_exec_property(job, "ImageExampleGen", "custom_config"))["custom_config"]["value"]
    assert config["labeled"] is False
    assert _exec_property(job, "ImageExampleGen", "input_base") == "gs://my-bucket/photos"


def test_the_components_run_in_pipeline_order(gpu_dataflow: dict[str, Any]) -> None:
    """ORDER is a chain: each step is (transitively) downstream of the one before it."""
    upstream = _upstream(gpu_dataflow)

    def ancestors(task: str) -> set[str]:
        found, todo = set(), [task]
        while todo:
            for up in upstream[todo.pop()] - found:
                found.add(up)
                todo.append(up)
        return found

    for before, after in zip(ORDER, ORDER[1:]):
        assert before in ancestors(after), f"{after} does not wait for {before}"


def test_only_the_simsiam_trainer_requests_a_gpu(gpu_dataflow: dict[str, Any]) -> None:
    resources = {
        name: spec["container"].get("resources")
        for name, spec in _executors(gpu_dataflow).items()
        if "container" in spec
    }
    assert len(resources) == len(ORDER) + 3  # + the ExampleValidator, EmbeddingIndexer and RunReport
    assert resources.pop("SimSiamTrainer_executor") == {"accelerator": {"type": "NVIDIA_L4", "count": "1"}}
    assert resources == dict.fromkeys(resources)  # every other step: no resources, so a CPU machine


def test_every_executor_runs_the_image(gpu_dataflow: dict[str, Any]) -> None:
    executors = _executors(gpu_dataflow)
    containers = {name: spec["container"] for name, spec in executors.items() if "container" in spec}
    assert set(containers) == {
        f"{name}_executor" for name in [*ORDER, "ExampleValidator", "EmbeddingIndexer", "RunReport"]
    }
    assert {c["image"] for c in containers.values()} == {IMAGE}
    # The two resolver steps are ML Metadata queries that Vertex AI runs itself, not containers.
    assert {name for name, spec in executors.items() if "resolver" in spec} == {
        f"{BLESSING_RESOLVER}_executor",
        f"{MODEL_RESOLVER}_executor",
    }
    assert "container" not in executors[f"{MODEL_RESOLVER}_executor"]


def test_the_run_report_is_an_html_artifact_the_pipeline_ui_renders(gpu_dataflow: dict[str, Any]) -> None:
    """KFP v2 / Vertex AI show an artifact whose schema title is `system.HTML` as a page (KFP's `dsl.HTML`);
    components/report/component.py writes the page to the artifact's URI itself."""
    spec = gpu_dataflow["pipelineSpec"]
    outputs = spec["components"]["RunReport"]["outputDefinitions"]["artifacts"]
    assert outputs["report"]["artifactType"]["instanceSchema"].startswith("title: system.HTML\n")
    assert _tasks(gpu_dataflow)["RunReport"]["taskInfo"]["name"] == "RunReport"


def test_every_custom_artifact_title_imports_as_the_kubeflow_v2_entry_point_needs(gpu_dataflow: dict[str, Any]) -> None:
    """The V2 container imports a custom artifact class by its schema title (tensorflow/tfx#6102)."""
    import yaml
    from tfx.utils import import_utils

    titles = set()
    for component in gpu_dataflow["pipelineSpec"]["components"].values():
        for side in ("inputDefinitions", "outputDefinitions"):
            for spec in component.get(side, {}).get("artifacts", {}).values():
                titles.add(yaml.safe_load(spec["artifactType"]["instanceSchema"])["title"])
    custom = {t for t in titles if not t.startswith("tfx.")}
    assert custom == {"system.HTML", "simsiam.EmbeddingIndex"}
    sys.path.insert(0, str(REPO / "kubeflow" / "entrypoint_path"))  # the image's PYTHONPATH (Dockerfile)
    try:
        for title in custom:
            assert import_utils.import_class_by_path(title).TYPE_NAME == title
    finally:
        sys.path.remove(str(REPO / "kubeflow" / "entrypoint_path"))
    assert "ENV PYTHONPATH=/opt/simsiam-tfx/kubeflow/entrypoint_path" in (REPO / "kubeflow" / "Dockerfile").read_text()


def test_pipeline_root_and_the_paths_under_it(gpu_dataflow: dict[str, Any]) -> None:
    assert gpu_dataflow["runtimeConfig"]["gcsOutputDirectory"] == ROOT
    simsiam = json.loads(_exec_property(gpu_dataflow, "SimSiamTrainer", "custom_config"))
    assert simsiam["checkpoint_root"] == f"{ROOT}/checkpoints/SimSiamTrainer"
    assert simsiam["simsiam"]["epochs"] == 400  # the gpu profile by default
    push = json.loads(_exec_property(gpu_dataflow, "Pusher", "push_destination"))
    assert push == {"filesystem": {"base_directory": f"{ROOT}/serving"}}
    assert _exec_property(gpu_dataflow, "ImageExampleGen", "input_base") == DATA


def test_trainer_step_size_profile_and_cache_flags(tmp_path: Path) -> None:
    job = _compile(
        tmp_path,
        "--data-dir",
        DATA,
        "--gpu-type",
        "NVIDIA_TESLA_A100",
        "--gpu-count",
        "2",
        "--trainer-cpu",
        "24",
        "--trainer-memory",
        "170",
        "--no-cache",
        "--profile",
        "smoke",
        "--epochs",
        "3",
    )
    assert _executors(job)["SimSiamTrainer_executor"]["container"]["resources"] == {
        "cpuLimit": 24.0,
        "memoryLimit": 170.0,
        "accelerator": {"type": "NVIDIA_TESLA_A100", "count": "2"},
    }
    simsiam = json.loads(_exec_property(job, "SimSiamTrainer", "custom_config"))["simsiam"]
    assert (simsiam["epochs"], simsiam["image_size"]) == (3, 32)  # --epochs over the smoke profile's 32 px
    assert not [name for name, task in _tasks(job).items() if "cachingOptions" in task]


def test_beam_steps_get_the_dataflow_arguments(gpu_dataflow: dict[str, Any]) -> None:
    expected = [
        "--runner=DataflowRunner",
        "--project=my-project",
        "--region=europe-west4",
        f"--temp_location={ROOT}/tmp",
        "--machine_type=n1-highmem-4",
        f"--sdk_container_image={IMAGE}",
    ]
    for name in ("ImageExampleGen", "StatisticsGen", "Transform", "Evaluator"):
        container = _executors(gpu_dataflow)[f"{name}_executor"]["container"]
        assert container["args"][-len(expected) :] == expected, name
    driver = _executors(gpu_dataflow)["ImageExampleGen_executor"]["container"]["lifecycle"]["preCacheCheck"]
    assert driver["args"][-len(expected) :] == expected


def test_without_dataflow_beam_runs_inside_each_step(vertex_training: dict[str, Any]) -> None:
    args = _executors(vertex_training)["Transform_executor"]["container"]["args"]
    assert "--runner=FnApiRunner" in args
    assert "--direct_running_mode=multi_processing" in args and "--direct_num_workers=0" in args  # every core
    assert not [a for a in args if a.startswith(("--project", "--temp_location"))]


def test_one_beam_worker_runs_in_the_steps_own_process() -> None:
    from kubeflow.runner import beam_pipeline_args

    assert beam_pipeline_args(_options(beam_workers=1)) == [
        "--runner=FnApiRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1",
        f"--sdk_container_image={IMAGE}",
    ]  # fmt: skip
    assert "--direct_num_workers=3" in beam_pipeline_args(_options(beam_workers=3))


@pytest.mark.parametrize("dataflow", [False, True])
def test_no_beam_step_builds_an_sdist_of_tfx(dataflow: bool) -> None:
    """TFX adds `--extra_package=<an sdist of TFX it has just built>` to a Beam step's arguments when
    they name no dependency (`make_beam_dependency_flags`): seconds and 49 MB of temporary files per step."""
    from tfx.utils.dependency_utils import make_beam_dependency_flags

    from kubeflow.runner import beam_pipeline_args

    extra = {"project": "my-project", "region": "us-central1"} if dataflow else {}
    args = beam_pipeline_args(_options(dataflow=dataflow, **extra))
    assert make_beam_dependency_flags(args) == args


@pytest.mark.parametrize("variant", ["gpu_dataflow", "vertex_training"])
def test_no_local_path_leaks_into_the_json(variant: str, request: pytest.FixtureRequest) -> None:
    job = request.getfixturevalue(variant)
    local = [str(REPO), str(REPO.parent), os.getcwd(), str(Path.home()), "/tmp/", "file:"]
    schemes, leaks = set(), []
    for s in _strings(job):
        schemes |= set(re.findall(r"([a-z][a-z0-9+.-]*)://", s))
        rest = re.sub(r"gs://[^\s\"',]*", "<gs>", s)  # what is left once the gs:// URIs are taken out
        if re.search(r"(^|[\s=:])/[A-Za-z]", rest) or any(marker in rest for marker in local):
            leaks.append(s)
    assert leaks == []
    assert schemes == {"gs"}


def test_the_json_parses_as_a_kfp_v2_pipeline(gpu_dataflow: dict[str, Any], tmp_path: Path) -> None:
    from google.protobuf import json_format
    from kfp import components
    from kfp.pipeline_spec import pipeline_spec_pb2

    job = json_format.ParseDict(gpu_dataflow, pipeline_spec_pb2.PipelineJob())  # strict: no unknown field
    spec = json_format.ParseDict(gpu_dataflow["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())
    assert job.runtime_config.gcs_output_directory == ROOT
    assert spec.pipeline_info.name == "simsiam-tfx"
    assert spec.schema_version == "2.0.0" and spec.sdk_version == "tfx-1.16.0"
    gpu = spec.deployment_spec["executors"]["SimSiamTrainer_executor"]["container"]["resources"]["accelerator"]
    assert gpu["type"] == "NVIDIA_L4"
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(gpu_dataflow["pipelineSpec"]))
    loaded = components.load_component_from_file(str(path))  # KFP's own loader, as for a compiled pipeline
    assert loaded.name == "simsiam-tfx"
    assert set(loaded.pipeline_spec.root.dag.tasks) == set(_tasks(gpu_dataflow))


def test_vertex_training_job_has_the_gpu_worker_pool(vertex_training: dict[str, Any]) -> None:
    from google.cloud.aiplatform_v1.types import AcceleratorType, CustomJobSpec
    from tfx.v1.extensions import google_cloud_ai_platform as gcp

    container = _executors(vertex_training)["SimSiamTrainer_executor"]["container"]
    assert container["image"] == IMAGE
    assert container["args"][1] == "tfx.extensions.google_cloud_ai_platform.trainer.executor.GenericExecutor"
    assert "resources" not in container  # the launcher step waits on CPU; the GPU is in the job
    assert not [n for n, e in _executors(vertex_training).items() if e.get("container", {}).get("resources")]

    config = json.loads(_exec_property(vertex_training, "SimSiamTrainer", "custom_config"))
    assert config[gcp.ENABLE_VERTEX_KEY] is True
    assert config[gcp.VERTEX_REGION_KEY] == "us-central1"
    assert config["checkpoint_root"] == f"{ROOT}/checkpoints/SimSiamTrainer"  # the run_fn's own settings stay
    # ... and the run_fn on Vertex reads them strictly, with TFX's own keys beside them.
    assert SimSiamTrainerConfig.from_custom_config(config).checkpoint_root == config["checkpoint_root"]
    args = config[gcp.TRAINING_ARGS_KEY]
    assert args["project"] == "my-project"
    spec = CustomJobSpec(**args["job_spec"])  # what the Vertex AI API receives (proto-plus checks the fields)
    (pool,) = spec.worker_pool_specs
    assert pool.machine_spec.accelerator_type == AcceleratorType.NVIDIA_TESLA_T4
    assert pool.machine_spec.accelerator_count == 2
    assert pool.machine_spec.machine_type == "n1-standard-16"
    assert pool.replica_count == 1 and pool.container_spec.image_uri == IMAGE
    assert "scheduling" not in args["job_spec"]  # one replica: nothing to restart together
    # The probe Trainer stays TFX's own Trainer, in its step.
    probe = _executors(vertex_training)["LinearProbeTrainer_executor"]["container"]
    assert probe["args"][1] == "tfx.components.trainer.executor.GenericExecutor"


def test_vertex_training_with_workers_has_a_chief_pool_and_a_worker_pool(tmp_path: Path) -> None:
    """--workers 3: Vertex AI's distributed layout (pool 0 the chief, pool 1 the workers), every replica
    on the GPU machine in the image, no command (TFX writes its own), the job restarted as a whole."""
    from google.cloud.aiplatform_v1.types import AcceleratorType, CustomJobSpec
    from tfx.v1.extensions import google_cloud_ai_platform as gcp

    job = _compile(
        tmp_path,
        *("--data-dir", DATA, "--project", "my-project", "--region", "us-central1", "--vertex-training"),
        *("--gpu-type", "NVIDIA_L4", "--gpu-count", "2", "--workers", "3"),
    )
    job_spec = json.loads(_exec_property(job, "SimSiamTrainer", "custom_config"))[gcp.TRAINING_ARGS_KEY]["job_spec"]
    spec = CustomJobSpec(**job_spec)
    assert [pool.replica_count for pool in spec.worker_pool_specs] == [1, 2]
    for pool in spec.worker_pool_specs:
        assert pool.machine_spec.machine_type == "g2-standard-24"
        assert (pool.machine_spec.accelerator_type, pool.machine_spec.accelerator_count) == (
            AcceleratorType.NVIDIA_L4,
            2,
        )
        assert pool.container_spec.image_uri == IMAGE and not pool.container_spec.command
    assert [set(pool["container_spec"]) for pool in job_spec["worker_pool_specs"]] == [{"image_uri"}] * 2
    assert spec.scheduling.restart_job_on_worker_restart is True


def test_tfds_input_keeps_its_data_in_the_pipeline_root(vertex_training: dict[str, Any]) -> None:
    example_gen = _executors(vertex_training)["ImageExampleGen_executor"]["container"]
    assert example_gen["args"][1] == "components.ingest.executor.TfdsImageExampleGenExecutor"
    config = json.loads(_exec_property(vertex_training, "ImageExampleGen", "custom_config"))
    assert config["custom_config"]["value"]["tfds_data_dir"] == f"{ROOT}/tensorflow_datasets"


def test_vertex_sdk_accepts_the_compiled_file(gpu_dataflow: dict[str, Any], tmp_path: Path) -> None:
    """submit-vertex's PipelineJob, built offline with anonymous credentials (nothing is sent)."""
    from google.auth.credentials import AnonymousCredentials

    from kubeflow.commands.submit_vertex import build_job

    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(gpu_dataflow))
    job = build_job(str(path), "my-project", "europe-west4", AnonymousCredentials(), enable_caching=False)
    assert job.job_id.startswith("simsiam-tfx-")
    assert job.runtime_config.gcs_output_directory == ROOT
    tasks = job.pipeline_spec["root"]["dag"]["tasks"]
    assert set(tasks) == set(_tasks(gpu_dataflow))
    assert {tasks[name]["cachingOptions"]["enableCache"] for name in tasks} == {False}  # --no-cache


# ---- the bare KFP v2 package (open-source Kubeflow Pipelines) ---------------------------------------


KFP_ROOT = "minio://mlpipeline/simsiam"


@pytest.fixture(scope="module")
def kfp_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`--target kfp` with MinIO paths, as a KFP cluster's own object store names them."""
    out = tmp_path_factory.mktemp("kfp") / "simsiam.yaml"
    args = ["compile-kubeflow", "--target", "kfp", "--output", str(out), "--image", IMAGE, "--pipeline-root", KFP_ROOT]
    assert cli_main([*args, "--data-dir", "minio://mlpipeline/data/flower_photos", "--gpu-count", "2"]) == 0
    return out


def test_the_bare_package_loads_with_kfps_own_loader(kfp_package: Path) -> None:
    """The file `kfp.Client().upload_pipeline` and `create_run_from_pipeline_package` take: a PipelineSpec
    (strictly, no unknown field) with the pipeline root as its default, in YAML, loaded by kfp itself."""
    import yaml
    from google.protobuf import json_format
    from kfp import components
    from kfp.pipeline_spec import pipeline_spec_pb2

    package = yaml.safe_load(kfp_package.read_text())
    spec = json_format.ParseDict(package, pipeline_spec_pb2.PipelineSpec())
    assert spec.default_pipeline_root == KFP_ROOT
    assert spec.pipeline_info.name == "simsiam-tfx" and spec.schema_version == "2.0.0"
    loaded = components.load_component_from_file(str(kfp_package))
    assert loaded.name == "simsiam-tfx"
    assert set(loaded.pipeline_spec.root.dag.tasks) == set(package["root"]["dag"]["tasks"])
    assert "pipelineSpec" not in package and "runtimeConfig" not in package  # not the Vertex AI wrapper


def test_the_bare_package_asks_kubernetes_for_the_gpu_and_keeps_its_paths(kfp_package: Path) -> None:
    """Open-source KFP puts the accelerator type into the pod's resource limits: a Kubernetes resource name."""
    import yaml

    package = yaml.safe_load(kfp_package.read_text())
    executors = package["deploymentSpec"]["executors"]
    assert executors["SimSiamTrainer_executor"]["container"]["resources"] == {
        "accelerator": {"type": "nvidia.com/gpu", "count": "2"}
    }
    schemes = {m for s in _strings(package) for m in re.findall(r"([a-z][a-z0-9+.-]*)://", s)}
    assert schemes == {"minio"}
    push = json.loads(
        package["root"]["dag"]["tasks"]["Pusher"]["inputs"]["parameters"]["push_destination"]["runtimeValue"][
            "constantValue"
        ]["stringValue"]
    )
    assert push == {"filesystem": {"base_directory": f"{KFP_ROOT}/serving"}}


def test_the_bare_package_is_the_vertex_jobs_pipeline_spec(gpu_dataflow: dict[str, Any], tmp_path: Path) -> None:
    """One pipeline, two wrappers: what the execution test runs (the package) is what Vertex AI gets,
    but for the GPU's name (Kubernetes' resource name on a KFP cluster, Vertex AI's accelerator name there)."""
    import yaml

    out = tmp_path / "simsiam.yaml"
    flags = [
        *("--data-dir", DATA, "--project", "my-project", "--region", "europe-west4", "--dataflow"),
        *("--dataflow-machine-type", "n1-highmem-4"),
    ]
    assert cli_main([*BASE_ARGS, "--target", "kfp", "--output", str(out), *flags]) == 0
    package = yaml.safe_load(out.read_text())
    assert package.pop("defaultPipelineRoot") == ROOT
    gpu = package["deploymentSpec"]["executors"]["SimSiamTrainer_executor"]["container"]["resources"]["accelerator"]
    assert gpu == {"type": "nvidia.com/gpu", "count": "1"}
    gpu["type"] = "NVIDIA_L4"
    assert package == gpu_dataflow["pipelineSpec"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--pipeline-root", "/data/simsiam"], "--pipeline-root must be a gs://, s3:// or minio://BUCKET/... URI"),
        (["--data-dir", "hdfs://nn/flowers"], "--data-dir must be a gs://, s3:// or minio://"),
        (["--gpu-type", "NVIDIA_L4"], "--gpu-type is the Kubernetes resource the node offers, such as nvidia.com/gpu"),
        (
            ["--vertex-training", "--project", "my-project", "--region", "us-central1"],
            "--vertex-training runs a Vertex AI job: compile it with --target vertex",
        ),
        (["--output-json"], "--target kfp: --output must be a .yaml file"),
    ],
)
def test_bare_package_option_errors(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / ("p.json" if "--output-json" in flags else "p.yaml")
    flags = [f for f in flags if f != "--output-json"]
    args = ["compile-kubeflow", "--target", "kfp", "--image", IMAGE, "--output", str(out)]
    args += ["--pipeline-root", KFP_ROOT, "--data-dir", "s3://bucket/flowers", *flags]
    assert cli_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_compile_says_what_a_root_outside_gs_needs() -> None:
    """The note's premise, checked on this environment's TensorFlow (the image's lock): TFX's file I/O
    (tf.io.gfile) has gs:// but neither s3:// nor minio://."""
    import tensorflow as tf

    from kubeflow.commands.compile_kubeflow import store_note

    for scheme in ("s3", "minio"):
        with pytest.raises(tf.errors.UnimplementedError, match=f"File system scheme '{scheme}' not implemented"):
            tf.io.gfile.exists(f"{scheme}://bucket/x")
    assert store_note("gs://bucket/root") is None
    assert "add tensorflow-io" in store_note("s3://bucket/root")
    assert "minio:// is no TensorFlow file system" in store_note(KFP_ROOT)


def test_submit_kfp_without_a_reachable_endpoint_fails_with_one_line(kfp_package: Path, tmp_path: Path) -> None:
    """kfp.Client(host=...) against a port nothing listens on, and with no endpoint at all."""
    import socket

    with socket.socket() as s:  # a free port, closed again: connecting to it is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "KF_PIPELINES_ENDPOINT"}
    base = [str(CLI), "submit-kfp", "--pipeline", str(kfp_package)]
    for extra, message in [
        (
            ["--host", f"http://127.0.0.1:{port}"],
            f"error: cannot reach Kubeflow Pipelines at http://127.0.0.1:{port}: ",
        ),
        ([], "error: no Kubeflow Pipelines endpoint: give --host URL or set KF_PIPELINES_ENDPOINT"),
    ]:
        result = subprocess.run([*base, *extra], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(message), result.stderr


def test_submit_kfp_rejects_the_vertex_job(gpu_dataflow: dict[str, Any], tmp_path: Path, capsys) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(json.dumps(gpu_dataflow))
    assert cli_main(["submit-kfp", "--pipeline", str(path), "--host", "http://127.0.0.1:9"]) == 2
    assert "is not a KFP package (no defaultPipelineRoot); use --target kfp" in capsys.readouterr().err


# ---- one compiled step, executed with a module missing from the image's path ------------------------


def test_the_local_resolver_answers_the_compiled_latest_blessed_model_queries(gpu_dataflow: dict[str, Any]) -> None:
    """run-compiled answers the two compiled ML Metadata queries of LatestBlessedModelStrategy from the
    artifacts of earlier runs: the latest blessed ModelBlessing, then the Model it names."""
    from kubeflow.local_executor import resolve

    executors = _executors(gpu_dataflow)
    blessings, models = executors[f"{BLESSING_RESOLVER}_executor"], executors[f"{MODEL_RESOLVER}_executor"]

    def artifact(title: str, name: str, **metadata: Any) -> dict[str, Any]:
        return {
            "name": name,
            "type": {"instanceSchema": f"title: {title}\ntype: object\n"},
            "uri": f"/r/{name}",
            "metadata": metadata,
        }

    known = [
        artifact("tfx.Model", "run1/model"),
        artifact("tfx.ModelBlessing", "run1/blessing", blessed=1.0, current_model_id="run1/model"),
        artifact("tfx.Model", "run2/model"),
        artifact("tfx.ModelBlessing", "run2/blessing", blessed=0.0, current_model_id="run2/model"),
    ]
    (blessing,) = resolve(blessings, {}, known)["model_blessing"]
    assert blessing["name"] == "run1/blessing"  # the latest *blessed* one
    assert resolve(models, {"input": [blessing]}, known) == {"model": [known[0]]}
    assert resolve(blessings, {}, []) == {"model_blessing": []}  # a first run: no baseline
    assert resolve(models, {"input": []}, known) == {"model": []}


def test_run_compiled_swaps_dataflow_and_the_vertex_job_for_their_in_container_equivalents(
    gpu_dataflow: dict[str, Any], vertex_training: dict[str, Any]
) -> None:
    import sys as _sys

    from kubeflow.local_executor import DIRECT_RUNNER, TRAINER_IN_JOB, container_command

    transform = _executors(gpu_dataflow)["Transform_executor"]["container"]
    command, notes = container_command(transform, '{"inputs": {}}')
    assert command[:3] == [_sys.executable, "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]
    assert command[3:7] == [
        "--executor_class_path",
        "tfx.components.transform.executor.Executor",
        "--json_serialized_invocation_args",
        '{"inputs": {}}',
    ]
    assert command[7:] == DIRECT_RUNNER and notes == ["Dataflow -> Beam's FnApiRunner in the step"]
    trainer = _executors(vertex_training)["SimSiamTrainer_executor"]["container"]
    command, notes = container_command(trainer, "{}")
    assert command[command.index("--executor_class_path") + 1] == TRAINER_IN_JOB
    assert notes == ["Vertex AI custom job -> the GenericExecutor its container runs"]
    probe = _executors(vertex_training)["LinearProbeTrainer_executor"]["container"]
    assert container_command(probe, "{}") == (
        [_sys.executable, *probe["command"][1:], *probe["args"][:3], "{}", *probe["args"][4:]],
        [],
    )


def test_a_step_fails_naming_the_module_missing_from_the_images_path(
    gpu_dataflow: dict[str, Any], tmp_path: Path
) -> None:
    """The EmbeddingIndexer's output type compiles to the title `simsiam.EmbeddingIndex`, which the
    image's PYTHONPATH (kubeflow/entrypoint_path/) provides. Without that module on the path the step,
    run through its compiled command, stops before its executor with the module's name: what the full
    execution (test_local_execution.py) would hit on any such module."""
    import shutil

    from kubeflow.local_executor import (
        ExecutionError,
        LocalStore,
        build_executor_input,
        image_pythonpath,
        run_container_task,
        step_environment,
    )

    spec = gpu_dataflow["pipelineSpec"]
    (entrypoint_path,) = image_pythonpath()
    assert entrypoint_path == str(REPO / "kubeflow" / "entrypoint_path")
    crippled = tmp_path / "entrypoint_path"
    shutil.copytree(entrypoint_path, crippled, ignore=shutil.ignore_patterns("simsiam"))
    assert (crippled / "system").is_dir() and not (crippled / "simsiam").exists()

    def artifact(title: str, name: str) -> dict[str, Any]:
        uri = tmp_path / "inputs" / name
        uri.mkdir(parents=True)
        return {
            "name": f"local/{name}",
            "type": {"instanceSchema": f"title: {title}\ntype: object\n"},
            "uri": str(uri),
            "metadata": {},
        }

    inputs = {"examples": [artifact("tfx.Examples", "examples")], "model": [artifact("tfx.Model", "model")]}
    executor_input = build_executor_input(spec, "EmbeddingIndexer", inputs, tmp_path / "run", LocalStore(tmp_path))
    container = spec["deploymentSpec"]["executors"]["EmbeddingIndexer_executor"]["container"]
    with pytest.raises(ExecutionError) as err:
        run_container_task("EmbeddingIndexer", container, executor_input, step_environment([str(crippled)]))
    message = str(err.value)
    assert "\n" not in message
    # TFX's import_utils wraps the ModuleNotFoundError; the line names the class path the JSON gave.
    assert message.startswith(
        "step EmbeddingIndexer failed (exit 1): ImportError: Could not import simsiam.EmbeddingIndex"
    )
    assert "No module named 'simsiam'" in (tmp_path / "run" / "EmbeddingIndexer" / "log.txt").read_text()


# ---- bad options: one line, before any compile work ------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--pipeline-root", "/tmp/simsiam"], "--pipeline-root must be a gs://BUCKET/... URI"),
        (["--gpu-type", "NVIDIA_GTX_1080"], "unknown --gpu-type 'NVIDIA_GTX_1080'"),
        (["--gpu-count", "0"], "--gpu-count must be at least 1, not 0"),
    ],
)
def test_bad_option_fails_with_one_line_before_compiling(flags: list[str], message: str, tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    args = [*BASE_ARGS, "--data-dir", DATA, "--output", str(out), *flags]
    code = (
        "import sys\nfrom pipeline.cli import main\nrc = main(sys.argv[1:])\n"
        "print('TF_LOADED' if 'tensorflow' in sys.modules else 'TF_NOT_LOADED')\nsys.exit(rc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert result.stdout.strip() == "TF_NOT_LOADED"  # it stopped before importing TFX
    assert not out.exists()


def test_the_console_script_reports_a_bad_option_the_same_way(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(CLI), *BASE_ARGS, "--output", str(tmp_path / "p.json"), "--data-dir", "../shared/flowers/flower_photos"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: --data-dir must be a gs://BUCKET/... URI that Vertex AI can reach, not "
        "'../shared/flowers/flower_photos'"
    ]


def _options(**changes: Any) -> KubeflowOptions:
    return KubeflowOptions(**{"pipeline_root": ROOT, "image": IMAGE, "data_dir": DATA, **changes})


def test_output_must_be_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main([*BASE_ARGS, "--data-dir", DATA, "--output", str(tmp_path / "p.yaml")]) == 2
    assert capsys.readouterr().err.startswith("error: --output must be a .json file")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pipeline_root": "runs/simsiam"}, "--pipeline-root must be a gs://"),
        ({"pipeline_root": "gs://"}, "--pipeline-root must be a gs://"),
        ({"pipeline_root": "s3://bucket/root"}, "--pipeline-root must be a gs://"),
        ({"gpu_type": "nvidia_l4"}, "unknown --gpu-type 'nvidia_l4'"),
        ({"gpu_count": -1}, "--gpu-count must be at least 1, not -1"),
        ({"gpu_type": "NVIDIA_L4", "gpu_count": 3}, "NVIDIA_L4 in counts of 1, 2, 4, 8, not 3"),
        ({"gpu_type": "NVIDIA_H200_141GB", "gpu_count": 1}, "NVIDIA_H200_141GB in counts of 8, not 1"),
        ({"image": "/home/me/simsiam.tar"}, "--image must be a container image reference"),
        ({"image": "Simsiam Image"}, "--image must be a container image reference"),
        ({"data_dir": None}, "give --data-dir and/or --unlabeled-dir, or --examples, or --tfds"),
        ({"tfds_name": "tf_flowers"}, "give --data-dir and/or --unlabeled-dir, or --examples, or --tfds"),
        ({"unlabeled_dir": "/local/photos"}, "--unlabeled-dir must be a gs://"),
        (
            {"data_dir": None, "examples": "gs://b/x/*.gz", "label_key": "label", "image_key": ""},
            "--image-key must name",
        ),
        (
            {"data_dir": None, "tfds_name": "tf_flowers", "tfds_data_dir": "/data/tfds"},
            "--tfds-data-dir must be a gs://",
        ),
        ({"serving_model_dir": "serving"}, "--serving-model-dir must be a gs://"),
        ({"pipeline_name": "SimSiam_TFX"}, "--pipeline-name must be lower-case"),
        ({"dataflow": True}, "--dataflow needs --project and --region"),
        ({"vertex_training": True, "project": "my-project"}, "--vertex-training needs --project and --region"),
        ({"project": "My Project"}, "is not a Google Cloud project ID"),
        ({"region": "us central"}, "is not a Google Cloud region"),
        (
            {"dataflow": True, "project": "my-project", "region": "us-central1", "temp_location": "/tmp/beam"},
            "--temp-location must be a gs://",
        ),
        ({"machine_type": "a2-highgpu-1g"}, "--machine-type applies only with --vertex-training"),
        ({"trainer_memory_gb": 0.0}, "--trainer-memory must be positive"),
        (
            {"vertex_training": True, "project": "my-project", "region": "us-central1", "workers": 0},
            "--workers must be at least 1 (the chief), not 0",
        ),
        ({"workers": 2}, "--workers applies only with --vertex-training"),
        ({"beam_workers": -1}, "--beam-workers must be 0 (one per core) or more, not -1"),
        (
            {"dataflow": True, "project": "my-project", "region": "us-central1", "beam_workers": 1},
            "--beam-workers applies to the Beam steps run inside their pipeline step, not to --dataflow",
        ),
        (
            {"vertex_training": True, "project": "my-project", "region": "us-central1", "trainer_cpu": 8.0},
            "with --vertex-training choose the job's --machine-type",
        ),
    ],
)
def test_option_errors(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _options(**changes)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_defaults_derive_from_the_pipeline_root_and_the_gpu() -> None:
    o = _options(
        pipeline_root=ROOT + "/",
        vertex_training=True,
        project="my-project",
        region="us-central1",
        gpu_type="NVIDIA_A100_80GB",
        gpu_count=4,
    )
    assert (o.serving_dir, o.beam_temp_location, o.tfds_dir) == (f"{ROOT}/serving", f"{ROOT}/tmp", None)
    assert o.training_machine_type == "a2-ultragpu-4g"
    assert (
        _options(
            vertex_training=True, project="my-project", region="us-central1", machine_type="g2-standard-16"
        ).training_machine_type
        == "g2-standard-16"
    )


def test_known_gpu_types_are_vertex_accelerator_names() -> None:
    from google.cloud.aiplatform_v1.types import AcceleratorType

    assert "NVIDIA_L4" in GPU_TYPES and "NVIDIA_TESLA_T4" in GPU_TYPES
    assert set(GPU_TYPES) <= set(AcceleratorType.__members__)
    assert all(counts and min(counts) >= 1 for counts in GPU_MACHINES.values())


def test_compile_help_does_not_load_tensorflow() -> None:
    code = (
        "import sys, contextlib, io\nfrom pipeline import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()) as buf:\n"
        "    try:\n        cli.main(['compile-kubeflow', '--help'])\n    except SystemExit:\n        pass\n"
        "print(buf.getvalue())\nprint('TF_LOADED' if 'tensorflow' in sys.modules else 'TF_NOT_LOADED')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert "--gpu-type" in out and "NVIDIA_L4" in out
    assert out.strip().endswith("TF_NOT_LOADED")


# ---- submit-vertex ---------------------------------------------------------------------------------


def _no_credentials_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "CLOUDSDK_", "GCE_"))}
    env.update(HOME=str(tmp_path), CLOUDSDK_CONFIG=str(tmp_path / "gcloud"), NO_GCE_CHECK="true")
    return env


def test_submit_without_credentials_fails_with_one_line(gpu_dataflow: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(gpu_dataflow))
    result = subprocess.run(
        [str(CLI), "submit-vertex", "--pipeline", str(path), "--project", "my-project", "--region", "europe-west4"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=_no_credentials_env(tmp_path),
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no Google Cloud credentials found"), result.stderr


def test_submit_checks_project_and_region_before_credentials(
    gpu_dataflow: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(gpu_dataflow))
    assert cli_main(["submit-vertex", "--pipeline", str(path), "--project", "my-project", "--region", "EU"]) == 2
    assert capsys.readouterr().err == "error: --region 'EU' is not a Google Cloud region such as us-central1\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("not json", "is not JSON"),
        ('{"displayName": "x"}', "is not a compiled pipeline job"),
        ('{"pipelineSpec": {}, "runtimeConfig": {"gcsOutputDirectory": "/tmp/root"}}', "has no gs:// pipeline root"),
    ],
)
def test_submit_rejects_a_file_that_is_not_a_compiled_job(
    content: str | None, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pipeline.json"
    if content is not None:
        path.write_text(content)
    assert (
        cli_main(["submit-vertex", "--pipeline", str(path), "--project", "my-project", "--region", "us-central1"]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


# ---- the image -------------------------------------------------------------------------------------


def _dockerfile() -> str:
    return (REPO / "kubeflow/Dockerfile").read_text()


def _pins() -> dict[str, str]:
    lines = (REPO / "requirements.lock").read_text().splitlines()
    return dict(line.split("#")[0].strip().lower().split("==") for line in lines if "==" in line)


def test_dockerfile_starts_from_the_tfx_release_image_and_its_beam() -> None:
    text, pins = _dockerfile(), _pins()
    assert f"ARG BASE_IMAGE=gcr.io/tfx-oss-public/tfx:{pins['tfx']}\n" in text
    assert pins["tfx"] == "1.16.0"
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    assert f"ARG BEAM_VERSION={pins['apache-beam']}\n" in text
    assert "FROM apache/beam_python3.10_sdk:${BEAM_VERSION} AS beam" in text
    assert "COPY --from=beam /opt/apache/beam /opt/apache/beam" in text
    assert not re.search(r"^(ENTRYPOINT|CMD)", text, re.M)  # Dataflow needs the base /opt/apache/beam/boot


def test_dockerfile_checks_for_the_cuda_and_cudnn_that_tensorflow_was_built_with() -> None:
    import tensorflow as tf

    info, text = tf.sysconfig.get_build_info(), _dockerfile()
    assert info["is_cuda_build"]
    assert f"'libcudart.so.{info['cuda_version'].split('.')[0]}'" in text
    assert f"'libcudnn.so.{info['cudnn_version'].split('.')[0]}'" in text


def test_dockerfile_installs_the_lock_without_resolving_then_the_package() -> None:
    text = re.sub(r"\\\n\s*", " ", _dockerfile())
    lock = text.index("pip install --no-cache-dir --no-deps -r requirements.lock")
    package = text.index("pip install --no-cache-dir --no-deps --no-build-isolation .")
    assert text.index("COPY requirements.lock") < lock < package
    assert "-e ." not in text  # installed, not editable: importable from any working directory


def test_the_image_ships_every_module_the_pipeline_json_names(gpu_dataflow: dict[str, Any]) -> None:
    """run_fn, preprocessing_fn and executor classes are module paths: their packages must be in the image."""
    import importlib.util
    from distutils.core import run_setup

    cwd = os.getcwd()
    try:
        os.chdir(REPO)
        packages = run_setup("setup.py", stop_after="init").packages
    finally:
        os.chdir(cwd)
    top_level = {p.split(".")[0] for p in packages}
    text = _dockerfile()
    assert {p for p in top_level if f"COPY {p} ./{p}\n" not in text} == set()
    assert "COPY setup.py README.md ./" in text

    named = {
        _exec_property(gpu_dataflow, "SimSiamTrainer", "run_fn"),
        _exec_property(gpu_dataflow, "LinearProbeTrainer", "run_fn"),
        _exec_property(gpu_dataflow, "Transform", "preprocessing_fn"),
    }
    named |= {c["container"]["args"][1] for c in _executors(gpu_dataflow).values() if "container" in c}
    ours = {n for n in named if n.split(".")[0] in top_level}
    assert {
        "components.train.simsiam.run_fn",
        "components.train.probe.run_fn",
        "components.transform.preprocessing_fn",
        "components.ingest.executor.ImageExampleGenExecutor",
    } <= ours
    for name in named:
        module = name.rsplit(".", 1)[0]
        assert importlib.util.find_spec(module) is not None, name
        assert name.split(".")[0] in top_level | {"tfx"}, name  # ours, or TFX's own (in the base image)
