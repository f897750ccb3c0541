"""Listing a folder of class sub-folders of images (pure Python, no TensorFlow); the bytes are checked
by `serving/images.py`.

Layout (that of tf_flowers' `flower_photos`): `ROOT/<class>/<file>.jpg`; `.jpg`, `.jpeg` and `.png` in any
letter case, and files in nested folders belong to the class folder they are in. Hidden files and
folders (a leading dot) and files directly in ROOT (such as LICENSE.txt) are ignored; any other file in a
class folder is a candidate image, and the ones that are not JPEG/PNG files are rejected with a reason.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from serving.images import Problem

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

Walk = Callable[[str], Iterable[tuple[str, list[str], list[str]]]]


class DataError(ValueError):
    """The input cannot be ingested; the message names the folder, class or share at fault.
    `report` is the ingestion report (a dict) when the files were validated: TFX deletes the outputs
    of a failed execution, the report file next to the examples included."""

    def __init__(self, message: str, report: dict | None = None):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class ImageListing:
    """What a data folder holds, in a deterministic order (sorted image ids)."""

    root: str
    classes: tuple[str, ...]
    files: tuple[tuple[str, str], ...]  # (image_id, class_name): candidates to read and validate
    rejected: tuple[tuple[str, Problem], ...] = field(default=())  # (image_id, problem) found by listing

    @property
    def labels(self) -> dict[str, int]:
        return {name: index for index, name in enumerate(self.classes)}

    def files_per_class(self) -> dict[str, int]:
        counts = dict.fromkeys(self.classes, 0)
        for _, class_name in self.files:
            counts[class_name] += 1
        return counts


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _class_files(class_dir: str, walk: Walk) -> Iterator[str]:
    """Paths relative to `class_dir` (POSIX separators) of every visible file below it."""
    for dirpath, dirnames, filenames in walk(class_dir):
        dirnames[:] = [d for d in dirnames if _visible(d.rstrip("/"))]  # os.walk honours the pruning
        rel_dir = dirpath[len(class_dir):].strip("/").replace(os.sep, "/")
        if any(not _visible(part) for part in rel_dir.split("/") if part):
            continue  # fileio.walk on some filesystems ignores the pruning
        for name in filenames:
            if _visible(name):
                yield f"{rel_dir}/{name}" if rel_dir else name


def list_image_folder(root: str, walk: Walk = os.walk) -> ImageListing:
    """Lists `root` (pass `walk=tfx.dsl.io.fileio.walk` for gs:// and other remote folders).

    Raises DataError when `root` is missing or holds no class folder."""
    root = str(root).rstrip("/") or "/"
    top = next(iter(walk(root)), None)
    if top is None:
        raise DataError(f"data folder {root} does not exist or is not a folder")
    classes = tuple(sorted(d.rstrip("/") for d in top[1] if _visible(d)))
    if not classes:
        raise DataError(
            f"data folder {root} holds no class folders: expected {root}/<class name>/<image file> "
            f"(found {len(top[2])} files and no sub-folder)"
        )
    files, rejected = [], []
    for class_name in classes:
        for rel in _class_files(f"{root}/{class_name}", walk):
            image_id = f"{class_name}/{rel}"
            extension = os.path.splitext(rel)[1].lower()
            if extension in IMAGE_EXTENSIONS:
                files.append((image_id, class_name))
            else:
                rejected.append((image_id, Problem(
                    "unsupported_extension",
                    f"not an image file name: extension {extension or '(none)'!r} is not one of "
                    f"{', '.join(IMAGE_EXTENSIONS)}",
                )))
    return ImageListing(root, classes, tuple(sorted(files)), tuple(sorted(rejected, key=lambda r: r[0])))


def check_listing(listing: ImageListing) -> None:
    """Fails before any decoding when a class folder has no image file at all."""
    empty = [name for name, n in listing.files_per_class().items() if n == 0]
    if empty:
        raise DataError(
            f"class folder(s) {', '.join(repr(e) for e in empty)} in {listing.root} hold no "
            f"{'/'.join(IMAGE_EXTENSIONS)} file: every class needs at least one valid image"
        )
