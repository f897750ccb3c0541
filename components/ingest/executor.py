"""ImageExampleGen's executors: the Beam pipeline that reads, validates and encodes images.

Sources (components/ingest/sources.py), the same tf.Examples (docs/CONTRACTS.md "Data": image, label,
class_name, image_id; an unlabelled image has label -1 and class_name ""):
- `image_example_gen(data_dir, unlabeled_dir)`: a folder of class folders and/or a folder of unlabelled
  images, with the driver of components/ingest/driver.py, whose fingerprint covers every file at any
  depth: caching notices any added, removed or rewritten file.
- `records_image_example_gen(pattern, image_key, label_key)`: existing TFRecord files of tf.Examples.
- `tfds_image_example_gen(name, data_dir)`: a TFDS image-classification dataset (a QueryBasedExampleGen
  whose "query" is the dataset name).

Every image is validated in Beam (serving/images.py, then `components.image_decode.decode_image`, the
very decode of the Transform and serving graphs); rejected files and records are counted (Beam counters
in namespace "ImageExampleGen") and listed with their reason in `<examples uri>/ingestion_report.json`,
with the class names, the per-split counts and the byte-identical copies.

Splits (components/ingest/splits.py): TFX's hash split on `image_id` into train/eval; labelled images
go to "train"/"eval", unlabelled ones to "unlabeled_train"/"unlabeled_eval". Byte-identical copies are
found first (a first pass hashes every image's bytes) and all copies of an image take the split of the
copy with the smallest id, so no image is in both train and eval. `Do` raises DataError (a ValueError)
when the data cannot make a usable dataset.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import tensorflow as tf
from google.protobuf import any_pb2, json_format, struct_pb2
from tfx.components.example_gen import write_split
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.util import examples_utils
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components import features as F
from components.image_decode import decode_problem
from components.ingest.ingestion_record import build_report, check_report, read_report, report_path, write_report
from components.ingest.sources import ImageRecord, ImageSource, folder_source, records_source, tfds_source
from components.ingest.splits import DEFAULT_MAX_REJECTED_FRACTION, canonical_ids, split_name, split_of
from serving.images import ImageLimits, Problem, check_image_bytes

METRICS_NAMESPACE = "ImageExampleGen"
# When set (by `simsiam-tfx ingest`), workers write how many files they validated into this folder.
PROGRESS_DIR_ENV = "SIMSIAM_INGEST_PROGRESS_DIR"

_EXAMPLES, _REJECTED = "examples", "rejected"
_REPORT_PATH_KEY = "_ingestion_report_path"  # added to exec_properties by Do for the Beam graph
_TFRECORD_PREFIX = write_split.DEFAULT_TF_RECORD_FILE_NAME


@dataclass(frozen=True)
class IngestConfig:
    """The executor's custom_config (a Struct packed in example_gen_pb2.CustomConfig)."""

    max_rejected_fraction: float = DEFAULT_MAX_REJECTED_FRACTION
    limits: ImageLimits = ImageLimits()
    tfds_data_dir: str | None = None
    # > 0: the examples will be trained on; fail unless the splits can train and evaluate
    # (report.check_splits), with this many train examples at least (one training batch).
    min_train_examples: int = 0
    unlabeled_dir: str | None = None  # a folder of unlabelled images, beside or instead of input_base's classes
    labeled: bool = True  # False: input_base itself is a folder of unlabelled images (no class folders)
    image_key: str = "image"  # TFRecord input: the bytes feature holding the encoded image
    label_key: str | None = None  # TFRecord input: the int64 or bytes label feature (None: unlabelled)

    def to_proto(self) -> example_gen_pb2.CustomConfig:
        struct = struct_pb2.Struct()
        struct.update(
            {
                "max_rejected_fraction": self.max_rejected_fraction,
                "min_side": self.limits.min_side,
                "max_side": self.limits.max_side,
                "max_pixels": self.limits.max_pixels,
                "max_decoded_pixels": self.limits.max_decoded_pixels,
                "min_train_examples": self.min_train_examples,
                "labeled": self.labeled,
                "image_key": self.image_key,
            }
        )
        for key in ("tfds_data_dir", "unlabeled_dir", "label_key"):
            if getattr(self, key):
                struct[key] = getattr(self, key)
        packed = any_pb2.Any()
        packed.Pack(struct)
        return example_gen_pb2.CustomConfig(custom_config=packed)

    @classmethod
    def from_exec_properties(cls, exec_properties: dict[str, Any]) -> IngestConfig:
        raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
        if not raw:
            return cls()
        config = example_gen_pb2.CustomConfig()
        proto_utils.json_to_proto(raw, config)
        struct = struct_pb2.Struct()
        config.custom_config.Unpack(struct)
        values = json_format.MessageToDict(struct)
        limits = ImageLimits.from_mapping(values)
        return cls(
            float(values.get("max_rejected_fraction", cls.max_rejected_fraction)),
            limits,
            values.get("tfds_data_dir"),
            int(values.get("min_train_examples", 0)),
            values.get("unlabeled_dir"),
            bool(values.get("labeled", True)),
            values.get("image_key", cls.image_key),
            values.get("label_key"),
        )


def make_example(image_id: str, class_name: str | None, label: int, data: bytes) -> tf.train.Example:
    """The raw tf.Example (components/features.py); an unlabelled image (`class_name` None) gets label -1
    and class_name "": every example has every feature, so one schema fits all splits."""
    if class_name is None:
        class_name, label = "", -1

    def _bytes(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    return tf.train.Example(
        features=tf.train.Features(
            feature={
                F.IMAGE: _bytes(data),
                F.LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                F.CLASS_NAME: _bytes(class_name.encode("utf-8")),
                F.IMAGE_ID: _bytes(image_id.encode("utf-8")),
            }
        )
    )


def source_path(root: str | None, paths: dict[str, str], image_id: str) -> str:
    """Where the file of `image_id` is: `root/<path below root>`, or the full path in `paths` when the
    source has no single root (None: two folders, perhaps on gs://)."""
    rel = paths.get(image_id, image_id)
    return f"{root}/{rel}" if root is not None else rel


def _read_bytes(path: str) -> bytes:
    if "://" in path:
        with fileio.open(path, "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


class _Progress:
    """Writes this worker's count of validated files for `simsiam-tfx ingest` to sum (see PROGRESS_DIR_ENV)."""

    def __init__(self, every: int = 25):
        folder = os.environ.get(PROGRESS_DIR_ENV)
        self.path = os.path.join(folder, f"{os.getpid()}-{id(self)}") if folder else None
        self.every, self.count = every, 0

    def add(self) -> None:
        self.count += 1
        if self.path and self.count % self.every == 0:
            self.flush()

    def flush(self) -> None:
        if not self.path:
            return
        try:
            with tempfile.NamedTemporaryFile("w", dir=os.path.dirname(self.path), delete=False) as f:
                f.write(str(self.count))
            os.replace(f.name, self.path)
        except OSError:
            self.path = None  # progress is a nicety; never fail ingestion over it


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class DigestImage(beam.DoFn):
    """ImageRecord -> (sha256 of its bytes, image_id); records that cannot be read give nothing (the
    validation pass reports them). The first pass: byte-identical copies share a digest."""

    def __init__(self, root: str | None, paths: dict[str, str] | None = None):
        self._root, self._paths = root, paths or {}

    def process(self, record: ImageRecord) -> Iterable[tuple[str, str]]:
        if record.problem:
            return
        data = record.data
        if data is None:
            try:
                data = _read_bytes(source_path(self._root, self._paths, record.image_id))
            except OSError:
                return
        yield _digest(data), record.image_id


def duplicate_groups(digests: beam.PCollection) -> beam.PCollection:
    """(digest, image_id) -> one element: the sorted groups of ids with identical bytes, sorted."""
    return (
        digests
        | "GroupByDigest" >> beam.GroupByKey()
        | "KeepCopies" >> beam.FlatMap(lambda kv: [sorted(kv[1])] if len(kv[1]) > 1 else [])
        | "GroupsToList" >> beam.combiners.ToList()
        | "SortGroups" >> beam.Map(sorted)
    )


def class_vocabulary(class_names) -> tuple[str, ...]:
    """Class names in label order: numerically when every name is an integer (labels read from int64
    features keep their order: 2 before 10), else sorted as text."""
    names = set(class_names)
    if names and all(re.fullmatch(r"[0-9]+", n) for n in names):
        return tuple(sorted(names, key=int))
    return tuple(sorted(names))


class ToImageExample(beam.DoFn):
    """ImageRecord -> (output split, tf.Example), or a rejection {"path", "reason"} on the "rejected"
    output. Side inputs: the class names in label order and the groups of byte-identical images."""

    def __init__(self, root: str | None, limits: ImageLimits, eval_percent: int, paths: dict[str, str] | None = None):
        self._root, self._limits, self._eval_percent, self._paths = root, limits, eval_percent, paths or {}
        self._accepted = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "images_accepted")
        self._rejected = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "images_rejected")

    def setup(self) -> None:
        self._progress = _Progress()
        self._tables = None

    def process(self, record: ImageRecord, classes: tuple[str, ...], groups: list[list[str]]) -> Iterable[Any]:
        if self._tables is None:  # the side inputs are the same for every element
            self._tables = ({name: i for i, name in enumerate(classes)}, canonical_ids(groups))
        labels, canonical = self._tables
        image_id, class_name, data, problem = record
        if data is None and problem is None:
            try:
                data = _read_bytes(source_path(self._root, self._paths, image_id))
            except OSError as err:
                problem = Problem("unreadable", f"cannot read the file: {err}")
        problem = problem or check_image_bytes(data, self._limits) or decode_problem(data, self._limits)
        self._progress.add()
        if problem:
            self._rejected.inc()
            beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"rejected_{problem.kind}").inc()
            yield beam.pvalue.TaggedOutput(_REJECTED, {"path": image_id, "reason": problem.reason})
            return
        self._accepted.inc()
        split = split_name(split_of(canonical.get(image_id, image_id), self._eval_percent), class_name is not None)
        label = labels[class_name] if class_name is not None else -1
        yield split, make_example(image_id, class_name, label, data)

    def finish_bundle(self) -> None:
        self._progress.flush()


def _split_and_class(split_example: tuple[str, tf.train.Example]) -> tuple[str, str]:
    split, example = split_example
    return split, example.features.feature[F.CLASS_NAME].bytes_list.value[0].decode("utf-8")


def _eval_percent(exec_properties: dict[str, Any]) -> int | None:
    """The eval split's share of the hash buckets, in percent (None without an eval split)."""
    output_config = example_gen_pb2.Output()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
    buckets = {s.name: s.hash_buckets for s in output_config.split_config.splits}
    return round(100 * buckets["eval"] / sum(buckets.values())) if buckets.get("eval") else None


def _serialize(split_example: tuple[str, tf.train.Example]) -> bytes:
    return split_example[1].SerializeToString()


def _write_report(
    _, path: str, classes: tuple[str, ...], counts: list, rejected: list, ignored: tuple, groups: list[list[str]]
) -> None:
    write_report(path, build_report(classes, counts, rejected, ignored, groups))


class ImageExampleGenExecutor(BaseExampleGenExecutor):
    """Reads image folders: `input_base` (class folders, or unlabelled images when the custom config says
    `labeled: false`) and the custom config's `unlabeled_dir`; see the module docstring."""

    def source(self, exec_properties: dict[str, Any]) -> ImageSource:
        config = IngestConfig.from_exec_properties(exec_properties)
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        if not config.labeled:
            return folder_source(None, input_base)
        return folder_source(input_base, config.unlabeled_dir)

    @staticmethod
    def _input_pattern(exec_properties: dict[str, Any]) -> str:
        """The pattern of the input config's one split (TFDS: the dataset name; TFRecords: the file glob)."""
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        return input_config.splits[0].pattern

    @staticmethod
    def split_names(source: ImageSource) -> list[str]:
        from components.ingest.splits import output_splits

        return output_splits(source.labeled, source.unlabeled)

    def _read_and_validate(self, pipeline: beam.Pipeline, exec_properties: dict[str, Any]):
        """(source, {"examples": (split, tf.Example), "rejected": {path, reason}}, class names, copies):
        the last two are singleton PCollections."""
        source = self.source(exec_properties)
        limits = IngestConfig.from_exec_properties(exec_properties).limits
        first = pipeline | "ListForDigests" >> (source.digest_records or source.records)
        groups = duplicate_groups(first | "DigestImages" >> beam.ParDo(DigestImage(source.root, source.paths)))
        if source.classes is not None:
            classes = pipeline | "Classes" >> beam.Create([tuple(source.classes)])
        else:
            classes = (
                first
                | "ClassNames" >> beam.FlatMap(lambda r: [r.class_name] if r.class_name is not None else [])
                | "DistinctClasses" >> beam.Distinct()
                | "ClassesToList" >> beam.combiners.ToList()
                | "LabelOrder" >> beam.Map(class_vocabulary)
            )
        outputs = (
            pipeline
            | "ListImages" >> source.records
            | "ValidateAndEncode"
            >> beam.ParDo(
                ToImageExample(source.root, limits, _eval_percent(exec_properties) or 0, source.paths),
                beam.pvalue.AsSingleton(classes),
                beam.pvalue.AsSingleton(groups),
            ).with_outputs(_REJECTED, main=_EXAMPLES)
        )
        return source, outputs, classes, groups

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        """Examples only (rejections are counted); GenerateExamplesByBeam also keeps the rejections."""
        executor = self

        @beam.ptransform_fn
        def ImagesToExample(pipeline, exec_properties, split_pattern):  # noqa: N802
            del split_pattern  # the executor walks the whole input folder
            examples = executor._read_and_validate(pipeline, exec_properties)[1][_EXAMPLES]
            return examples | "DropSplit" >> beam.Map(lambda split_example: split_example[1])

        return ImagesToExample

    def _generate(
        self, pipeline: beam.Pipeline, exec_properties: dict[str, Any]
    ) -> tuple[dict[str, beam.PCollection], ImageSource]:
        """{split name: (split, tf.Example)} by the hash split of components/ingest/splits.py, plus the
        report of counts, rejections and copies; and the source they were read from (`Do` checks the
        report against it: its name, and whether labels were expected). In place of TFX's
        `GenerateExamplesByBeam`, which returns the splits alone."""
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        split_config = output_config.split_config
        hash_splits = [s.name for s in split_config.splits]
        if (
            hash_splits != ["train", "eval"]
            or split_config.partition_feature_name != F.IMAGE_ID
            or sum(s.hash_buckets for s in split_config.splits) != 100
        ):
            raise ValueError(
                "ImageExampleGen needs an output_config that hash-splits on image_id into train and eval "
                "over 100 buckets; build it with components.ingest.component.output_config()"
            )
        source, outputs, classes, groups = self._read_and_validate(pipeline, exec_properties)
        names = self.split_names(source)
        parts = outputs[_EXAMPLES] | "SplitData" >> beam.Partition(lambda kv, n: names.index(kv[0]), len(names))
        counts = (
            [part | f"ClassOf[{name}]" >> beam.Map(_split_and_class) for name, part in zip(names, parts)]
            | "AllClasses" >> beam.Flatten()
            | "CountPerSplitAndClass" >> beam.combiners.Count.PerElement()
            | "CountsToList" >> beam.combiners.ToList()
        )
        rejected = (
            (outputs[_REJECTED], pipeline | "ListedRejections" >> beam.Create(source.listed_rejections))
            | "AllRejections" >> beam.Flatten()
            | "RejectionsToList" >> beam.combiners.ToList()
        )
        _ = (
            pipeline
            | "ReportTrigger" >> beam.Create([None])
            | "WriteReport"
            >> beam.Map(
                _write_report,
                exec_properties[_REPORT_PATH_KEY],
                beam.pvalue.AsSingleton(classes),
                beam.pvalue.AsSingleton(counts),
                beam.pvalue.AsSingleton(rejected),
                source.ignored,
                beam.pvalue.AsSingleton(groups),
            )
        )
        return dict(zip(names, parts)), source

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        """The base class' Do, except that examples stream from validation into the TFRecord files:
        TFX's WriteSplit reshuffles every split first, which holds all image bytes in the runner's
        memory at once (memory that grows with the data set). Within a split the examples
        keep their listing order (sorted ids for folders, file order for TFRecords): the Trainers shuffle
        every epoch. Then the report is checked."""
        self._log_startup(input_dict, output_dict, exec_properties)
        examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        properties = dict(exec_properties)
        properties[_REPORT_PATH_KEY] = report_path(examples.uri)
        with self._make_beam_pipeline() as pipeline:
            splits, source = self._generate(pipeline, properties)
            examples.split_names = artifact_utils.encode_split_names(list(splits))
            for name, split in splits.items():
                _ = (
                    split
                    | f"Serialize[{name}]" >> beam.Map(_serialize)
                    | f"WriteSplit[{name}]"
                    >> beam.io.WriteToTFRecord(
                        os.path.join(artifact_utils.get_split_uri([examples], name), _TFRECORD_PREFIX),
                        file_name_suffix=".gz",
                    )
                )
        examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(examples, write_split.to_file_format_str(example_gen_pb2.FORMAT_TFRECORDS_GZIP))
        config = IngestConfig.from_exec_properties(exec_properties)
        check_report(
            read_report(examples.uri),
            config.max_rejected_fraction,
            source.description,
            _eval_percent(exec_properties),
            config.min_train_examples,
            labeled=source.labeled,
        )


class TfdsImageExampleGenExecutor(ImageExampleGenExecutor):
    """Reads the TFDS dataset named by the input split's pattern (the QueryBasedExampleGen "query")."""

    def source(self, exec_properties: dict[str, Any]) -> ImageSource:
        config = IngestConfig.from_exec_properties(exec_properties)
        return tfds_source(self._input_pattern(exec_properties), config.tfds_data_dir)


class RecordsImageExampleGenExecutor(ImageExampleGenExecutor):
    """Reads TFRecord files of tf.Examples: `input_base` / the input split's pattern, the image under the
    custom config's `image_key`, the label under its `label_key` (none: unlabelled images)."""

    def source(self, exec_properties: dict[str, Any]) -> ImageSource:
        config = IngestConfig.from_exec_properties(exec_properties)
        return records_source(
            exec_properties[standard_component_specs.INPUT_BASE_KEY],
            self._input_pattern(exec_properties),
            config.image_key,
            config.label_key,
        )
