"""Where ImageExampleGen's images come from: a folder of class folders, or a TFDS dataset.

Each source lists `(image_id, class_name, bytes | None)` records for the Beam graph of
`components.ingest.executor` (bytes None: read from `root` + image_id by the workers) and the files
that were rejected already while listing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import apache_beam as beam
from tfx.dsl.io import fileio

from components.ingest.files import check_listing, list_image_folder
from components.ingest.tfds import iter_tfds_images, prepare_tfds


@dataclass(frozen=True)
class ImageSource:
    """What a source contributes to the Beam graph."""

    description: str  # names the input in error messages
    classes: tuple[str, ...]
    records: beam.PTransform  # PBegin -> (image_id, class_name, bytes | None)
    root: str | None = None  # where records with bytes None are read from
    listed_rejections: tuple[dict[str, str], ...] = ()
    ignored: tuple[dict[str, str], ...] = ()  # {"path", "rule"}: files left out by a documented rule
    paths: dict[str, str] = field(default_factory=dict)  # image_id -> path below root, where they differ


def _walk(root: str):
    return fileio.walk if "://" in root else None  # None: files.local_walk, which follows links


def folder_source(input_base: str) -> ImageSource:
    listing = list_image_folder(input_base, walk=_walk(input_base))
    check_listing(listing)
    return ImageSource(
        description=f"data folder {listing.root}",
        classes=listing.classes,
        records=beam.Create([(image_id, class_name, None) for image_id, class_name in listing.files]),
        root=listing.root,
        listed_rejections=tuple({"path": i, "reason": p.reason} for i, p in listing.rejected),
        ignored=tuple({"path": path, "rule": rule} for path, rule in listing.ignored),
        paths=listing.paths,
    )


def _tfds_records(_, name: str, data_dir: str | None):
    yield from iter_tfds_images(name, data_dir)


def tfds_source(name: str, data_dir: str | None) -> ImageSource:
    dataset = prepare_tfds(name, data_dir)

    @beam.ptransform_fn
    def ReadTfds(pbegin):  # noqa: N802 (Beam's naming of transforms)
        return (pbegin | "Start" >> beam.Create([None])
                | "Records" >> beam.FlatMap(_tfds_records, name, data_dir)
                | "Spread" >> beam.Reshuffle())

    return ImageSource(f"TFDS dataset {name}", dataset.classes, ReadTfds())

