"""ImageExampleGen as TFX components, one factory per kind of input; all make the same tf.Examples.

- `image_example_gen(data_dir, unlabeled_dir)`: a folder of class folders and/or a folder of
  unlabelled images. A FileBasedExampleGen with `components.ingest.executor`'s executor and
  `components.ingest.driver`'s driver, whose fingerprint covers every file at any depth of both
  folders, so caching notices any added, removed or rewritten file.
- `records_image_example_gen(pattern, image_key, label_key)`: TFRecord files of tf.Examples that hold
  encoded images, validated record by record like files (TFX's own FileBasedExampleGen driver
  fingerprints the matching files).
- `tfds_image_example_gen(name, data_dir)`: a TFDS image-classification dataset (a
  QueryBasedExampleGen whose "query" is the dataset name).
All hash-split on `image_id` into train/eval (`output_config`); the executor writes labelled images to
"train"/"eval" and unlabelled ones to "unlabeled_train"/"unlabeled_eval" (components/ingest/splits.py).
"""

from __future__ import annotations

import os

from tfx.components.example_gen.component import FileBasedExampleGen, QueryBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

from components import features as F
from components.ingest.driver import ImageFolderDriver
from components.ingest.executor import (
    ImageExampleGenExecutor,
    IngestConfig,
    RecordsImageExampleGenExecutor,
    TfdsImageExampleGenExecutor,
)
from components.ingest.sources import split_glob
from components.ingest.splits import DEFAULT_EVAL_PERCENT, DEFAULT_MAX_REJECTED_FRACTION, split_buckets
from components.ingest.tfds import DEFAULT_TFDS_NAME
from serving.images import ImageLimits

EXAMPLE_GEN_ID = "ImageExampleGen"
FOLDER_PATTERN = "*/*"  # TFX's pattern, unused: the driver fingerprints and the executor walks the whole tree


class ImageFolderExampleGen(FileBasedExampleGen):
    """FileBasedExampleGen with the whole-tree fingerprint of `ImageFolderDriver`."""

    DRIVER_CLASS = ImageFolderDriver


def output_config(eval_percent: int = DEFAULT_EVAL_PERCENT) -> example_gen_pb2.Output:
    """TFX's hash split on image_id: train gets 100 - eval_percent of 100 buckets."""
    return example_gen_pb2.Output(
        split_config=example_gen_pb2.SplitConfig(
            splits=[
                example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=n) for name, n in split_buckets(eval_percent)
            ],
            partition_feature_name=F.IMAGE_ID,
        )
    )


def _check_fraction(max_rejected_fraction: float) -> None:
    if not 0.0 <= max_rejected_fraction <= 1.0:
        raise ValueError(f"max_rejected_fraction must be in [0, 1], got {max_rejected_fraction}")


def _local(path: str) -> str:
    path = str(path)
    return path if "://" in path else os.path.abspath(path)


def image_example_gen(
    data_dir: str | None = None,
    unlabeled_dir: str | None = None,
    eval_percent: int = DEFAULT_EVAL_PERCENT,
    max_rejected_fraction: float = DEFAULT_MAX_REJECTED_FRACTION,
    limits: ImageLimits = ImageLimits(),
    min_train_examples: int = 0,
) -> FileBasedExampleGen:
    """The ExampleGen for a folder of class folders (`data_dir`), a folder of unlabelled images at any
    depth (`unlabeled_dir`), or both, with id EXAMPLE_GEN_ID. `min_train_examples` > 0 (a run that
    trains: one batch) makes it fail on splits that cannot train and evaluate
    (`components.ingest.ingestion_record.check_splits`). Raises ValueError without a folder."""
    _check_fraction(max_rejected_fraction)
    if not data_dir and not unlabeled_dir:
        raise ValueError("give data_dir (class folders), unlabeled_dir (unlabelled images) or both")
    input_base = _local(data_dir or unlabeled_dir)
    config = IngestConfig(
        max_rejected_fraction=max_rejected_fraction,
        limits=limits,
        min_train_examples=min_train_examples,
        unlabeled_dir=_local(unlabeled_dir) if data_dir and unlabeled_dir else None,
        labeled=bool(data_dir),
    )
    return ImageFolderExampleGen(
        input_base=input_base,
        input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="images", pattern=FOLDER_PATTERN)]),
        output_config=output_config(eval_percent),
        custom_config=config.to_proto(),
        custom_executor_spec=executor_spec.BeamExecutorSpec(ImageExampleGenExecutor),
    ).with_id(EXAMPLE_GEN_ID)


def records_image_example_gen(
    pattern: str,
    image_key: str = "image",
    label_key: str | None = None,
    eval_percent: int = DEFAULT_EVAL_PERCENT,
    max_rejected_fraction: float = DEFAULT_MAX_REJECTED_FRACTION,
    limits: ImageLimits = ImageLimits(),
    min_train_examples: int = 0,
) -> FileBasedExampleGen:
    """The ExampleGen for TFRecord files (GZIP or not) of tf.Examples matching the glob `pattern`: the
    encoded image in bytes feature `image_key`, the label in int64 or bytes feature `label_key` (None:
    the images are unlabelled). Each record is validated; a bad one is rejected with its record index."""
    _check_fraction(max_rejected_fraction)
    base, rest = split_glob(str(pattern))
    return FileBasedExampleGen(
        input_base=_local(base),
        input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="records", pattern=rest)]),
        output_config=output_config(eval_percent),
        custom_config=IngestConfig(
            max_rejected_fraction=max_rejected_fraction,
            limits=limits,
            min_train_examples=min_train_examples,
            labeled=bool(label_key),
            image_key=image_key,
            label_key=label_key,
        ).to_proto(),
        custom_executor_spec=executor_spec.BeamExecutorSpec(RecordsImageExampleGenExecutor),
    ).with_id(EXAMPLE_GEN_ID)


def tfds_image_example_gen(
    name: str = DEFAULT_TFDS_NAME,
    data_dir: str | None = None,
    eval_percent: int = DEFAULT_EVAL_PERCENT,
    max_rejected_fraction: float = DEFAULT_MAX_REJECTED_FRACTION,
    limits: ImageLimits = ImageLimits(),
    min_train_examples: int = 0,
) -> QueryBasedExampleGen:
    """The ExampleGen for a TFDS dataset (downloaded into `data_dir` on first use), with id EXAMPLE_GEN_ID."""
    _check_fraction(max_rejected_fraction)
    if data_dir and "://" not in data_dir:
        data_dir = os.path.abspath(data_dir)
    return QueryBasedExampleGen(
        input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="tfds", pattern=name)]),
        output_config=output_config(eval_percent),
        custom_config=IngestConfig(
            max_rejected_fraction=max_rejected_fraction,
            limits=limits,
            tfds_data_dir=data_dir,
            min_train_examples=min_train_examples,
        ).to_proto(),
        custom_executor_spec=executor_spec.BeamExecutorSpec(TfdsImageExampleGenExecutor),
    ).with_id(EXAMPLE_GEN_ID)
