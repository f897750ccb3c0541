"""The ingestion part of the pipeline: ImageExampleGen -> StatisticsGen -> SchemaGen (or ImportSchemaGen) ->
ExampleValidator."""

from __future__ import annotations

from tfx.components import ExampleValidator, SchemaGen, StatisticsGen
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.orchestration.pipeline import Pipeline

from components.ingest.component import image_example_gen, records_image_example_gen, tfds_image_example_gen
from components.ingest.inputs import ImageInput
from components.ingest.splits import DEFAULT_EVAL_PERCENT, DEFAULT_MAX_REJECTED_FRACTION, output_splits
from pipeline.component_ids import EXAMPLE_VALIDATOR_ID


def image_statistics_options():
    """TFDV StatsOptions that declare the encoded image feature as image bytes (`image_domain`).

    TFDV then skips the top-k / unique-value sketches for it (`schema_util.get_bytes_features` in
    TFDV's TopKUniquesSketchStatsGenerator), which on JPEG bytes cost more than all other statistics
    together and say nothing: every value is unique. Presence, value counts and byte lengths are still
    computed (as `bytes_stats`), and the schema SchemaGen infers from them is unchanged (docs/measurements.md,
    "Ingestion"). The partial schema only names the image feature; SchemaGen still infers the rest."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    from components import features as F

    schema = schema_pb2.Schema()
    image = schema.feature.add(name=F.IMAGE, type=schema_pb2.BYTES)
    image.image_domain.SetInParent()
    return tfdv.StatsOptions(schema=schema)


def ingestion_components(
    image_input: ImageInput,
    eval_percent: int = DEFAULT_EVAL_PERCENT,
    max_rejected_fraction: float = DEFAULT_MAX_REJECTED_FRACTION,
    min_train_examples: int = 0,
    schema_path: str | None = None,
) -> list:
    """[example_gen, statistics_gen, schema_gen, example_validator] for `image_input`
    (components/ingest/inputs.py).
    `min_train_examples` > 0 (the training batch size, for a run that trains): the ExampleGen fails with
    one line on degenerate splits (`components.ingest.ingestion_record.check_splits`).

    SchemaGen infers the schema from the first split only ("train", or "unlabeled_train" without labels):
    the checks guarantee it holds a training batch, while another split may be empty (a few unlabelled
    images may all hash to train), and TFDV marks every feature DEPRECATED from an empty split's
    statistics. Every example has every feature, so one split's schema fits all.

    `schema_path` (a curated `schema.pbtxt`, `--schema`): TFX's ImportSchemaGen brings it in instead of
    SchemaGen (the TFX guide's way to fix a schema, tensorflow/tfx#2718), so the ExampleValidator
    compares every split with the same fixed schema in every run: drift against it is an anomaly
    (components/ingest/anomalies.py says what an anomaly does). Without it the schema is inferred from
    this run's own train split and the validator checks that split only: there is no reference to drift
    from, and the other splits would only show what inference fixed from a sample (the `image_id` values
    of a small train split become a string domain, so every eval image id is "unexpected": a warning on
    every small run that says nothing)."""
    common = dict(
        eval_percent=eval_percent, max_rejected_fraction=max_rejected_fraction, min_train_examples=min_train_examples
    )
    if image_input.examples:
        example_gen = records_image_example_gen(
            image_input.examples, image_input.image_key, image_input.label_key, **common
        )
    elif image_input.tfds_name:
        example_gen = tfds_image_example_gen(image_input.tfds_name, image_input.tfds_data_dir, **common)
    else:
        example_gen = image_example_gen(*image_input.folders(), **common)
    splits = output_splits(image_input.labeled, image_input.unlabeled)
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"], stats_options=image_statistics_options())
    if schema_path:
        schema_gen = ImportSchemaGen(schema_file=schema_path)
    else:
        schema_gen = SchemaGen(
            statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True, exclude_splits=splits[1:]
        )
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
        exclude_splits=[] if schema_path else splits[1:],
    ).with_id(EXAMPLE_VALIDATOR_ID)
    return [example_gen, statistics_gen, schema_gen, example_validator]


def run_ingestion(
    image_input: ImageInput,
    out: str,
    *,
    eval_percent: int,
    max_rejected_fraction: float,
    schema_path: str | None,
    workers: int,
    pipeline_name: str,
    enable_cache: bool,
    total_files: int | None,
) -> dict:
    """Runs `ingestion_components` with LocalDagRunner into the run folder `out` (OUT/metadata.sqlite,
    OUT/pipeline_root/), printing a line as each component starts and ends and the count of
    validated files (of `total_files`, when known). Returns the ImageExampleGen's ingestion report
    (components/ingest/ingestion_record.py) with the ExampleValidator's anomalies of every split
    under "anomalies". Raises components.ingest.files.DataError when the data fails ingestion (its
    `report`, when set, holds what was rejected)."""

    from components.ingest.anomalies import read_all_splits
    from components.ingest.component import EXAMPLE_GEN_ID
    from components.ingest.ingestion_record import read_report
    from pipeline.local_runner import (
        beam_pipeline_args,
        latest_artifact_uri,
        metadata_connection,
        run_folder_paths,
        run_local,
    )
    from pipeline.progress import ComponentProgress, FileProgress

    metadata_path, pipeline_root = run_folder_paths(out)
    pipeline = Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=ingestion_components(image_input, eval_percent, max_rejected_fraction, schema_path=schema_path),
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection(metadata_path),
        beam_pipeline_args=beam_pipeline_args(),
    )
    with ComponentProgress(metadata_path), FileProgress(total_files):
        run_local(pipeline, workers)
    report = read_report(latest_artifact_uri(metadata_path, EXAMPLE_GEN_ID))
    report["anomalies"] = read_all_splits(latest_artifact_uri(metadata_path, EXAMPLE_VALIDATOR_ID, "anomalies"))
    return report
