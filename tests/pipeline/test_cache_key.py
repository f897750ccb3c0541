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


def _compiled(tmp_path: Path, config) -> dict[str, tuple]:
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
            beam_pipeline_args(),
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
def smoke(run_folder) -> dict[str, tuple]:
    return _compiled(run_folder, profile_config("smoke"))


def test_no_steps_cache_key_holds_the_beam_worker_count(smoke) -> None:
    """`--workers 1` after a run with 2 must reuse ingestion, Transform and both Trainers: the
    count reaches Beam only when `run_local` runs the pipeline, so no compiled step holds a number for it,
    only the placeholder."""
    beam_steps = [node for node, (spec, _) in smoke.items() if b"direct_num_workers" in spec]
    assert {"ImageExampleGen", "StatisticsGen", "Transform", "Evaluator"} <= set(beam_steps)
    for node, (spec, parameters) in smoke.items():
        for count in (b"1", b"2"):
            assert b"direct_num_workers=" + count not in spec + parameters, node
            assert b"SIMSIAM_TFX_BEAM_WORKERS" in spec or node not in beam_steps


def test_run_local_hands_the_worker_count_to_beam_for_the_run_only() -> None:
    """Kept out of the cache key, the count is resolved when a Beam step starts, from the variables
    `beam_workers` (what `run_local` runs the pipeline in) sets and then restores."""
    import os

    from tfx.dsl.compiler import placeholder_utils
    from tfx.dsl.components.base.executor_spec import BeamExecutorSpec
    from tfx.orchestration.portable.data_types import ExecutionInfo
    from tfx.utils.dependency_utils import make_beam_dependency_flags

    from pipeline.local_runner import BEAM_WORKERS_ENV, beam_pipeline_args, beam_workers

    spec = BeamExecutorSpec(object)  # any class: only its Beam arguments are encoded and resolved
    spec.add_beam_pipeline_args(beam_pipeline_args())

    def resolved() -> list:
        context = placeholder_utils.ResolutionContext(ExecutionInfo())
        return [
            placeholder_utils.resolve_placeholder_expression(arg, context)
            for arg in spec.encode().beam_pipeline_args_placeholders
        ]

    before = os.environ.get(BEAM_WORKERS_ENV)
    for workers, mode in ((3, "multi_processing"), (1, "in_memory")):
        with beam_workers(workers):
            assert f"--direct_num_workers={workers}" in resolved()
            assert f"--direct_running_mode={mode}" in resolved()
            # A dependency flag is among them: TFX builds no sdist of itself at each Beam step.
            assert make_beam_dependency_flags(resolved()) == resolved()
    assert os.environ.get(BEAM_WORKERS_ENV) == before  # restored after the run


def test_a_recipe_setting_changes_the_simsiam_trainers_cache_key(run_folder, smoke) -> None:
    """The counter-check: more epochs is another model, so the SimSiam Trainer must run again."""
    longer = _compiled(run_folder, profile_config("smoke", epochs=3))
    assert longer["SimSiamTrainer"] != smoke["SimSiamTrainer"]
    assert longer["Transform"] == smoke["Transform"]  # the recipe's epochs do not touch Transform
