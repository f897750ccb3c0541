"""The ingestion part of the pipeline: ImageExampleGen -> StatisticsGen -> SchemaGen."""

from __future__ import annotations

from tfx import v1 as tfx

from components.ingest.component import image_example_gen, tfds_image_example_gen


def ingestion_components(
    data_dir: str | None = None,
    tfds_name: str | None = None,
    tfds_data_dir: str | None = None,
    eval_percent: int = 15,
    max_rejected_fraction: float = 0.1,
    min_train_examples: int = 0,
) -> list:
    """[example_gen, statistics_gen, schema_gen] for a folder of class folders or a TFDS dataset (one of).
    `min_train_examples` > 0 (the training batch size, for a run that trains): the ExampleGen fails with
    one line on degenerate splits (`components.ingest.report.check_splits`)."""
    if (data_dir is None) == (tfds_name is None):
        raise ValueError("give exactly one of data_dir (a folder of class folders) and tfds_name")
    if data_dir is not None:
        example_gen = image_example_gen(data_dir, eval_percent, max_rejected_fraction,
                                        min_train_examples=min_train_examples)
    else:
        example_gen = tfds_image_example_gen(tfds_name, tfds_data_dir, eval_percent, max_rejected_fraction,
                                             min_train_examples=min_train_examples)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    return [example_gen, statistics_gen, schema_gen]
