"""Where ImageExampleGen's images come from: image folders, TFRecord files of tf.Examples, or TFDS.

Each source lists `ImageRecord`s for the Beam graph of `components.ingest.executor` (bytes None: read
from `root` + image_id by the workers), says which images carry labels, and lists the files that were
rejected already while listing. Its `records` transform may be applied twice: once to find
byte-identical copies, once to validate and write (components/ingest/executor.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import apache_beam as beam
from tfx.dsl.io import fileio

from components.ingest.files import folder_listing
from components.ingest.inputs import ImageInput
from components.ingest.tfds import iter_tfds_images, prepare_tfds
from serving.images import Problem


class ImageRecord(NamedTuple):
    """One candidate image: `class_name` None for an unlabelled image, `data` None to read the file
    `root/paths.get(image_id, image_id)`, `problem` set when the record itself is unusable."""

    image_id: str
    class_name: str | None
    data: bytes | None = None
    problem: Problem | None = None


@dataclass(frozen=True)
class ImageSource:
    """What a source contributes to the Beam graph."""

    description: str  # names the input in error messages
    classes: tuple[str, ...] | None  # label order; None: the class names found in the records, sorted
    records: beam.PTransform  # PBegin -> ImageRecord
    labeled: bool  # whether labelled images may come (the "train"/"eval" splits exist)
    unlabeled: bool  # whether unlabelled images may come (the "unlabeled_*" splits exist)
    root: str | None = None  # where records with data None are read from (None: `paths` are full paths)
    listed_rejections: tuple[dict[str, str], ...] = ()
    ignored: tuple[dict[str, str], ...] = ()  # {"path", "rule"}: files left out by a documented rule
    paths: dict[str, str] = field(default_factory=dict)  # image_id -> path below root, where they differ
    digest_records: beam.PTransform | None = None  # the first pass's records, when they differ from `records`


def _walk(root: str):
    return fileio.walk if "://" in root else None  # None: files.local_walk, which follows links


def folder_source(data_dir: str | None, unlabeled_dir: str | None = None) -> ImageSource:
    """Images from `data_dir` (class folders: labelled) and/or `unlabeled_dir` (any depth: unlabelled).
    With both, `root` is None and `paths` holds every image's full path (local or gs://...)."""
    listing = folder_listing(data_dir, unlabeled_dir, _walk)
    root, paths = (data_dir or unlabeled_dir).rstrip("/"), dict(listing.paths)
    if data_dir and unlabeled_dir:  # two folders (perhaps in two buckets): every image by its full path
        root = None
        for image_id, class_name in listing.files:
            folder = data_dir if class_name is not None else unlabeled_dir
            paths[image_id] = f"{folder.rstrip('/')}/{listing.paths.get(image_id, image_id)}"
    return ImageSource(
        description=ImageInput(data_dir=data_dir, unlabeled_dir=unlabeled_dir).describe(),
        classes=listing.classes,
        records=beam.Create([ImageRecord(image_id, class_name) for image_id, class_name in listing.files]),
        labeled=bool(data_dir),
        unlabeled=bool(unlabeled_dir),
        root=root,
        listed_rejections=tuple({"path": i, "reason": p.reason} for i, p in listing.rejected),
        ignored=tuple({"path": path, "rule": rule} for path, rule in listing.ignored),
        paths=paths,
    )


def _tfds_records(_, name: str, data_dir: str | None) -> Iterator[ImageRecord]:
    for image_id, class_name, data in iter_tfds_images(name, data_dir):
        yield ImageRecord(image_id, class_name, data)


def tfds_source(name: str, data_dir: str | None) -> ImageSource:
    dataset = prepare_tfds(name, data_dir)

    @beam.ptransform_fn
    def ReadTfds(pbegin, spread: bool):  # noqa: N802 (Beam's naming of transforms)
        records = pbegin | "Start" >> beam.Create([None]) | "Records" >> beam.FlatMap(_tfds_records, name, data_dir)
        return records | "Spread" >> beam.Reshuffle() if spread else records

    # Spread over the workers for validation only: a Reshuffle holds every image's bytes in the runner,
    # and the digest pass needs no parallelism.
    return ImageSource(
        f"TFDS dataset {name}",
        dataset.classes,
        ReadTfds(True),
        labeled=True,
        unlabeled=False,
        digest_records=ReadTfds(False),
    )


# --- TFRecord files of tf.Examples ---------------------------------------------------------------------


def _compression(path: str) -> str:
    """ "GZIP" for gzip files (by their magic bytes, whatever the name), else "" (uncompressed)."""
    with fileio.open(path, "rb") as f:
        return "GZIP" if f.read(2) == b"\x1f\x8b" else ""


def _feature_values(example, key: str) -> list:
    """The values of feature `key` (bytes, ints or floats); [] when the example has no such feature."""
    if key not in example.features.feature:
        return []
    feature = example.features.feature[key]
    return list(feature.bytes_list.value or feature.int64_list.value or feature.float_list.value)


def _several_values(key: str, flag: str, what: str, n: int) -> Problem:
    """The problem of a feature holding `n` > 1 values where one is expected: taking the first would
    train on a silent guess (tf.Example features are lists, and a writer's bug fills them twice)."""
    return Problem(
        "several_values", f"feature {key!r} ({flag}) holds {n} values, not one {what}: which one is meant is unknown"
    )


def parse_image_record(image_id: str, serialized: bytes, image_key: str, label_key: str | None) -> ImageRecord:
    """One serialized tf.Example -> an ImageRecord: the encoded image from bytes feature `image_key`;
    with `label_key`, the class name from it (an int64 label becomes its decimal text, a bytes label
    its UTF-8 text). A record that is not a tf.Example, lacks either feature, or holds several values in
    either (kind "several_values"), gets a `problem`."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example()
    try:
        example.ParseFromString(serialized)
    except DecodeError as err:
        return ImageRecord(image_id, None, None, Problem("bad_record", f"not a tf.Example ({err})"))
    features = example.features.feature
    if image_key not in features or not features[image_key].bytes_list.value:
        shown = ", ".join(sorted(features)[:8]) or "none"
        return ImageRecord(
            image_id,
            None,
            None,
            Problem(
                "no_image_feature", f"no bytes feature {image_key!r} (--image-key); the record's features: {shown}"
            ),
        )
    if len(images := features[image_key].bytes_list.value) > 1:
        return ImageRecord(image_id, None, None, _several_values(image_key, "--image-key", "image", len(images)))
    data = images[0]
    if not label_key:
        return ImageRecord(image_id, None, data)
    labels = _feature_values(example, label_key)
    if len(labels) > 1:
        return ImageRecord(image_id, None, None, _several_values(label_key, "--label-key", "label", len(labels)))
    label = labels[0] if labels else None
    if label is None or isinstance(label, float):
        return ImageRecord(
            image_id,
            None,
            None,
            Problem(
                "no_label",
                f"no int64 or bytes feature {label_key!r} (--label-key): every record needs its label; "
                "leave --label-key out to train on all records without labels",
            ),
        )
    class_name = label.decode("utf-8", "backslashreplace") if isinstance(label, bytes) else str(int(label))
    if not class_name or class_name.startswith("-"):  # "" and -1 are this project's marks of "no label"
        return ImageRecord(
            image_id,
            None,
            None,
            Problem(
                "no_label",
                f"label {class_name!r} in {label_key!r} (--label-key) marks no class: give every record a "
                "class (a non-negative int or a non-empty name), or leave --label-key out",
            ),
        )
    return ImageRecord(image_id, class_name, data)


def read_image_records(path: str, image_id_prefix: str, image_key: str, label_key: str | None) -> Iterator[ImageRecord]:
    """Every record of one TFRecord file (GZIP or not) as ImageRecords with ids `<prefix>:<index>`
    (index from 0, in file order). A record whose framing or checksum is broken ends the file with one
    record carrying the problem: what follows it cannot be located reliably."""
    import tensorflow as tf

    index = 0
    try:
        for serialized in tf.data.TFRecordDataset(path, compression_type=_compression(path)).as_numpy_iterator():
            yield parse_image_record(f"{image_id_prefix}:{index}", serialized, image_key, label_key)
            index += 1
    except (tf.errors.DataLossError, tf.errors.OutOfRangeError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        yield ImageRecord(
            f"{image_id_prefix}:{index}",
            None,
            None,
            Problem(
                "corrupt_record",
                f"the file is corrupt from record {index} on ({type(err).__name__}: {message}); "
                "later records of this file are not read",
            ),
        )


def split_glob(pattern: str) -> tuple[str, str]:
    """A file glob -> (the folder before its first wildcard, the rest): `data/part-*.gz` ->
    (`data`, `part-*.gz`). The folder is ExampleGen's `input_base`, the rest its split pattern."""
    parts = pattern.rstrip("/").split("/")
    fixed = next((i for i, part in enumerate(parts) if any(c in part for c in "*?[")), len(parts) - 1)
    base = "/".join(parts[:fixed]) or ("/" if pattern.startswith("/") else ".")
    return base, "/".join(parts[fixed:])


def records_source(input_base: str, pattern: str, image_key: str, label_key: str | None) -> ImageSource:
    """tf.Examples in the TFRecord files `input_base/pattern`, images under `image_key`, labels (int64 or
    bytes) under `label_key` or none. Image id: `<file path below input_base>:<record index>`.

    Raises DataError when no file matches."""
    from components.ingest.files import DataError

    base = input_base.rstrip("/") or "/"
    files = sorted(fileio.glob(f"{base}/{pattern}"))
    if not files:
        raise DataError(f"no TFRecord file matches {base}/{pattern} (--examples)")
    ids = {path: os.path.relpath(path, base) if "://" not in path else path[len(base) + 1 :] for path in files}

    @beam.ptransform_fn
    def ReadRecords(pbegin):  # noqa: N802
        return (
            pbegin
            | "Files" >> beam.Create(files)
            | "Records" >> beam.FlatMap(lambda path: read_image_records(path, ids[path], image_key, label_key))
        )

    return ImageSource(
        f"TFRecord files {base}/{pattern}", None, ReadRecords(), labeled=bool(label_key), unlabeled=not label_key
    )
