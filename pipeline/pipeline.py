"""The simsiam-tfx pipeline: one `create_pipeline(...)` that lists its components.

ExampleGen -> StatisticsGen -> SchemaGen or ImportSchemaGen (-> ExampleValidator) -> Transform -> SimSiam Trainer
-> linear-probe Trainer -> Evaluator (no regression against the last pushed model, an optional floor)
-> BaselineGate (the probe and kNN must beat the untrained baselines: components/evaluate/baseline_gate.py)
-> Pusher,
an EmbeddingIndexer that embeds every image for `simsiam-tfx search` (and TensorBoard's projector),
and a RunReport that writes the run's report.html (components/report/).

SimSiam trains on every image of the train splits, labelled or not; the probe and the Evaluator read
only the labelled splits. With no label at all there is nothing to probe: the SimSiam Trainer exports
an embedding-only serving model, and a LabelFreeEvaluator (components/evaluate/label_free.py) blesses
it on the held-out unlabelled images (not collapsed, effective rank clearly above the random-init
encoder's and not below the last blessed model's) for the Pusher.
Runners (pipeline/local_runner.py, kubeflow/runner.py) pass all configuration in.
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

import tensorflow_model_analysis as tfma
from tfx.components import Evaluator, Pusher, Trainer, Transform
from tfx.dsl.components.common.resolver import Resolver
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import pusher_pb2, trainer_pb2, transform_pb2
from tfx.types import standard_artifacts
from tfx.types.channel import Channel

from components import features as F
from components.evaluate.baseline_gate import BaselineGate
from components.evaluate.baseline_resolver import PreviousBlessedModelStrategy
from components.evaluate.label_free import LabelFreeEvaluator
from components.index.embedding_index import EmbeddingIndexer
from components.ingest.inputs import ImageInput
from components.ingest.splits import EVAL_SPLIT, TRAIN_SPLIT, output_splits
from components.report.component import RunReport
from components.train.trainer_config import SimSiamTrainerConfig
from pipeline.component_ids import (
    BASELINE_GATE_ID,
    EMBEDDING_INDEXER_ID,
    EVALUATOR_ID,
    LABEL_FREE_EVALUATOR_ID,
    PROBE_TRAINER_ID,
    PUSHER_ID,
    RUN_REPORT_ID,
    SIMSIAM_TRAINER_ID,
    TRANSFORM_ID,
)
from pipeline.configs import RunConfig
from pipeline.ingestion import ingestion_components

TRANSFORM_FN = "components.transform.preprocessing_fn"
SIMSIAM_RUN_FN = "components.train.simsiam.run_fn"
PROBE_RUN_FN = "components.train.probe.run_fn"


def eval_config(accuracy_floor: float) -> tfma.EvalConfig:
    """Accuracy overall and per class; blessed when the overall accuracy is above the floor and no worse
    than the baseline's (per-class accuracies are reported, not gated: a hard class must not block)."""
    gate = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": accuracy_floor}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -1e-10}
        ),
    )
    accuracy = tfma.MetricConfig(
        class_name="SparseCategoricalAccuracy",
        per_slice_thresholds=[tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=gate)],
    )
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(signature_name="serving_default", label_key=F.LABEL, prediction_key="probabilities")
        ],
        metrics_specs=[tfma.MetricsSpec(metrics=[accuracy, tfma.MetricConfig(class_name="ExampleCount")])],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[F.CLASS_NAME])],
    )


def _baseline_resolver(strategy: type, producer_id: str, gate_id: str, candidate: Any) -> Resolver:
    """The last model of `producer_id` that the final gate `gate_id` blessed (not `candidate`, with this
    project's strategy). Only that gate's blessings count: the Evaluator may bless a model that the
    BaselineGate then refuses, and a refused model must not become the next run's baseline."""
    inputs = {
        "model": Channel(type=standard_artifacts.Model, producer_component_id=producer_id),
        "model_blessing": Channel(type=standard_artifacts.ModelBlessing, producer_component_id=gate_id),
    }
    if strategy is PreviousBlessedModelStrategy:
        inputs["candidate"] = candidate
    return Resolver(strategy_class=strategy, **inputs).with_id("latest_blessed_model_resolver")


class _Gated(NamedTuple):
    """What a gate helper adds: its components in pipeline order, and the channels the rest reads."""

    components: list[Any]
    served: Any  # the Model the Pusher pushes and the EmbeddingIndexer embeds with
    evaluation: Any  # the ModelEvaluation the report shows
    blessing: Any  # the final gate's ModelBlessing: the Pusher's
    probe_run: Any  # the probe Trainer's ModelRun, None without labels


def _labelled_gate(config: RunConfig, example_gen, transform, schema_gen, simsiam_trainer, baseline_strategy) -> _Gated:
    """Labels: linear-probe Trainer -> Evaluator (TFMA; no regression against the last pushed model, an
    optional floor) -> BaselineGate (the untrained baselines)."""
    probe_trainer = Trainer(
        run_fn=PROBE_RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        base_model=simsiam_trainer.outputs["model"],
        train_args=trainer_pb2.TrainArgs(splits=[TRAIN_SPLIT], num_steps=0),
        eval_args=trainer_pb2.EvalArgs(splits=[EVAL_SPLIT], num_steps=0),
        custom_config={"probe_epochs": config.probe_epochs, "sample_size": config.sample_size},
    ).with_id(PROBE_TRAINER_ID)
    served = probe_trainer.outputs["model"]
    model_resolver = _baseline_resolver(baseline_strategy, PROBE_TRAINER_ID, BASELINE_GATE_ID, served)
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=served,
        baseline_model=model_resolver.outputs["model"],
        eval_config=eval_config(config.accuracy_floor),
        example_splits=[EVAL_SPLIT],
    ).with_id(EVALUATOR_ID)
    baseline_gate = BaselineGate(
        evaluation=evaluator.outputs["evaluation"],
        evaluator_blessing=evaluator.outputs["blessing"],
        model=served,
        simsiam_run=simsiam_trainer.outputs["model_run"],
        against=config.gate_against,
        margin=config.gate_margin,
    ).with_id(BASELINE_GATE_ID)
    return _Gated(
        [probe_trainer, model_resolver, evaluator, baseline_gate],
        served,
        evaluator.outputs["evaluation"],
        baseline_gate.outputs["blessing"],
        probe_trainer.outputs["model_run"],
    )


def _label_free_gate(
    config: RunConfig, transform, simsiam_trainer, simsiam_config: str, eval_split: str, baseline_strategy
) -> _Gated:
    """No labels: the SimSiam Trainer's embedding-only model -> LabelFreeEvaluator (RankMe, collapse)."""
    served = simsiam_trainer.outputs["model"]
    model_resolver = _baseline_resolver(baseline_strategy, SIMSIAM_TRAINER_ID, LABEL_FREE_EVALUATOR_ID, served)
    gate = LabelFreeEvaluator(
        examples=transform.outputs["transformed_examples"],
        model=served,
        baseline_model=model_resolver.outputs["model"],
        simsiam_config=simsiam_config,
        splits=eval_split,
        min_encoder_spread=config.min_encoder_spread,
        min_rank_ratio=config.min_rank_ratio,
        max_examples=config.sample_size,
    ).with_id(LABEL_FREE_EVALUATOR_ID)
    return _Gated([model_resolver, gate], served, gate.outputs["evaluation"], gate.outputs["blessing"], None)


def create_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    config: RunConfig,
    serving_model_dir: str,
    image_input: ImageInput,
    metadata_connection_config: Any = None,
    beam_pipeline_args: list[str] | None = None,
    enable_cache: bool = True,
    simsiam_trainer_component: Any = None,
    baseline_strategy: type = PreviousBlessedModelStrategy,
    schema_path: str | None = None,
) -> Pipeline:
    """The pipeline for `image_input` (components/ingest/inputs.py: folders, TFRecords or TFDS).

    `simsiam_trainer_component` lets the Kubeflow runner swap in a Vertex AI training job;
    `baseline_strategy` picks the no-regression baseline (Kubeflow V2 compiles only TFX's
    own `LatestBlessedModelStrategy`; see components/evaluate/baseline_resolver.py for why the default differs);
    `schema_path`: a curated schema.pbtxt the data is validated against (pipeline/ingestion.py)."""
    labeled = image_input.labeled
    splits = output_splits(labeled, image_input.unlabeled)
    train_splits = [s for s in splits if s.endswith(TRAIN_SPLIT)]
    eval_split = EVAL_SPLIT if labeled else f"unlabeled_{EVAL_SPLIT}"
    # With `schema_path` (a curated schema), drift against it shows up as the ExampleValidator's anomalies.
    example_gen, statistics_gen, schema_gen, example_validator = ingestion_components(
        image_input,
        eval_percent=config.eval_percent,
        max_rejected_fraction=config.max_rejected_fraction,
        min_train_examples=config.simsiam.batch_size,
        schema_path=schema_path,
    )
    transform = Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=TRANSFORM_FN,
        custom_config={"stored_size": config.simsiam.stored_size},
        # The pixel statistics come from every training image, labelled or not.
        splits_config=transform_pb2.SplitsConfig(analyze=train_splits, transform=splits),
    ).with_id(TRANSFORM_ID)
    trainer_cls = simsiam_trainer_component or Trainer
    simsiam_trainer = trainer_cls(
        run_fn=SIMSIAM_RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=trainer_pb2.TrainArgs(splits=train_splits, num_steps=0),
        eval_args=trainer_pb2.EvalArgs(splits=[eval_split], num_steps=0),
        custom_config=SimSiamTrainerConfig(
            simsiam=config.simsiam,
            checkpoint_root=os.path.join(pipeline_root, "checkpoints", SIMSIAM_TRAINER_ID),
            knn_every=config.knn_every,
            collapse_threshold=config.collapse_threshold,
            precision=config.precision,
            checkpoint_io_fraction=config.checkpoint_io_fraction,
            # Without labels this is the model the Pusher serves: embeddings only, from raw image bytes.
            export_serving_model=not labeled,
            sample_size=config.sample_size,
            shuffle_buffer=config.shuffle_buffer,
            cache_images=config.cache_images,
            keep_checkpoints=config.keep_checkpoints,
        ).to_custom_config(),
    ).with_id(SIMSIAM_TRAINER_ID)
    simsiam_config = json.dumps(config.simsiam.to_dict(), sort_keys=True)
    gated = (
        _labelled_gate(config, example_gen, transform, schema_gen, simsiam_trainer, baseline_strategy)
        if labeled
        else _label_free_gate(config, transform, simsiam_trainer, simsiam_config, eval_split, baseline_strategy)
    )
    pusher = Pusher(
        model=gated.served,
        model_blessing=gated.blessing,
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=serving_model_dir)
        ),
    ).with_id(PUSHER_ID)
    # The Trainer's model is the one the Pusher copies; the index is built even when it is not blessed.
    embedding_indexer = EmbeddingIndexer(
        model=gated.served, examples=example_gen.outputs["examples"], max_thumbnails=config.sample_size
    ).with_id(EMBEDDING_INDEXER_ID)
    run_report = RunReport(
        examples=example_gen.outputs["examples"],
        transform_graph=transform.outputs["transform_graph"],
        simsiam_model=simsiam_trainer.outputs["model"],
        simsiam_run=simsiam_trainer.outputs["model_run"],
        probe_run=gated.probe_run,
        evaluation=gated.evaluation,
        blessing=gated.blessing,
        pushed_model=pusher.outputs["pushed_model"],
        embedding_index=embedding_indexer.outputs["embedding_index"],
        anomalies=example_validator.outputs["anomalies"],
        simsiam_config=simsiam_config,
        accuracy_floor=config.accuracy_floor,
        profile=config.profile,
    ).with_id(RUN_REPORT_ID)
    return Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=[
            example_gen,
            statistics_gen,
            schema_gen,
            example_validator,
            transform,
            simsiam_trainer,
            *gated.components,
            pusher,
            embedding_indexer,
            run_report,
        ],
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args,
    )
