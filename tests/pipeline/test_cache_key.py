"""A rerun that changes only how the pipeline runs (not what it learns) reuses every cached step.

TFX's cache key of a step (tfx/orchestration/portable/cache_utils.get_cache_context) hashes its
compiled executor spec, its exec properties and its input artifacts; a Beam step's executor spec holds
the pipeline's Beam arguments. So a setting written into either re-runs that step, and every step
after it sees new input artifacts: the SimSiam Trainer re-trains and the Pusher pushes a model that
differs only by chance. These tests compile the pipeline (no step runs) and compare those parts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from components.ingest.inputs import ImageInput
from pipeline.configs import profile_config


def _compiled(tmp_path: Path, config, workers: int) -> dict[str, tuple]:
    """Each node's (executor spec, exec properties) as compiled for LocalDagRunner."""
    from tfx.dsl.compiler import compiler
    from tfx.proto.orchestration import pipeline_pb2

    from pipeline.local_runner import beam_pipeline_args, metadata_connection
    from pipeline.pipeline import create_pipeline

    for name in ("a", "b"):
        (tmp_path / "photos" / name).mkdir(parents=True, exist_ok=True)
    ir = compiler.Compiler().compile(
        create_pipeline(
            "simsiam-tfx",
            str(tmp_path / "out" / "pipeline_root"),
            config,
            str(tmp_path / "out" / "serving"),
            ImageInput(data_dir=str(tmp_path / "photos")),
            metadata_connection(str(tmp_path / "out" / "metadata.sqlite")),
            beam_pipeline_args(workers),
        )
    )
    deployment = pipeline_pb2.IntermediateDeploymentConfig()
    ir.deployment_config.Unpack(deployment)
    nodes = [node.pipeline_node for node in ir.nodes]
    return {
        node.node_info.id: (
            deployment.executor_specs[node.node_info.id].SerializeToString(deterministic=True)
            if node.node_info.id in deployment.executor_specs
            else b"",
            node.parameters.SerializeToString(deterministic=True),
        )
        for node in nodes
    }


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    """One data and run folder for every compilation: their paths are part of the exec properties."""
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="module")
def smoke_workers_2(run_folder) -> dict[str, tuple]:
    return _compiled(run_folder, profile_config("smoke"), workers=2)


def test_the_beam_worker_count_leaves_every_steps_cache_key_unchanged(run_folder, smoke_workers_2) -> None:
    """`--workers 1` after a run with the default 2 must reuse ingestion, Transform and both Trainers."""
    one_worker = _compiled(run_folder, profile_config("smoke"), workers=1)
    assert one_worker.keys() == smoke_workers_2.keys()
    changed = [node for node in one_worker if one_worker[node] != smoke_workers_2[node]]
    assert changed == []


def test_the_beam_worker_count_still_reaches_beam() -> None:
    """Kept out of the cache key, the count is resolved when a Beam step starts, from this process."""
    from tfx.dsl.compiler import placeholder_utils
    from tfx.dsl.components.base.executor_spec import BeamExecutorSpec
    from tfx.orchestration.portable.data_types import ExecutionInfo

    from pipeline.local_runner import beam_pipeline_args

    for workers, mode in ((3, "multi_processing"), (1, "in_memory")):
        spec = BeamExecutorSpec(object)  # any class: only its Beam arguments are encoded and resolved
        spec.add_beam_pipeline_args(beam_pipeline_args(workers))
        resolved = [
            placeholder_utils.resolve_placeholder_expression(arg, placeholder_utils.ResolutionContext(ExecutionInfo()))
            for arg in spec.encode().beam_pipeline_args_placeholders
        ]
        assert f"--direct_num_workers={workers}" in resolved
        assert f"--direct_running_mode={mode}" in resolved


def test_a_recipe_setting_changes_the_simsiam_trainers_cache_key(run_folder, smoke_workers_2) -> None:
    """The counter-check: more epochs is another model, so the SimSiam Trainer must run again."""
    longer = _compiled(run_folder, profile_config("smoke", epochs=3), workers=2)
    assert longer["SimSiamTrainer"] != smoke_workers_2["SimSiamTrainer"]
    assert longer["Transform"] == smoke_workers_2["Transform"]  # the recipe's epochs do not touch Transform
