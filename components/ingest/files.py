r"""Listing a folder of class sub-folders of images (pure Python, no TensorFlow); the bytes are checked
by `serving/images.py`.

Layout (that of tf_flowers' `flower_photos`): `ROOT/<class>/<file>.jpg`; `.jpg`, `.jpeg` and `.png` in any
letter case, and files in nested folders belong to the class folder they are in. Every file is accounted
for: ingested, ignored by a rule (`ImageListing.ignored`: hidden files and folders, i.e. a leading dot, and
files directly in ROOT such as LICENSE.txt), or rejected with a reason. Any other file in a class folder
is a candidate image; the ones that are not JPEG/PNG files are rejected. Links to files and folders are
followed (as `find -L`); a link back to a folder already listed, a folder that cannot be listed and a
broken link are rejected with their reason. A name that is not valid UTF-8 (legal on Linux, e.g. Latin-1
names from old archives) gets a stable escaped id, `caf\xe9.jpg` (text) for the bytes b"caf\xe9.jpg"
(`escape_name`); `ImageListing.paths` maps it back to the file.
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
    ignored: tuple[tuple[str, str], ...] = field(default=())  # (path, rule); a folder's path ends with "/"
    paths: dict[str, str] = field(default_factory=dict)  # image_id -> path below root, where they differ

    @property
    def labels(self) -> dict[str, int]:
        return {name: index for index, name in enumerate(self.classes)}

    def files_per_class(self) -> dict[str, int]:
        counts = dict.fromkeys(self.classes, 0)
        for _, class_name in self.files:
            counts[class_name] += 1
        return counts


HIDDEN_RULE = "hidden (the name starts with a dot)"
ROOT_FILE_RULE = "not in a class folder (files directly in the data folder are not images of a class)"


def _visible(name: str) -> bool:
    return not name.startswith(".")


def escape_name(name: str) -> str:
    """A file or folder name as valid UTF-8 text: unchanged when it is; else each byte that is not UTF-8
    becomes `\\xNN` (Python's os functions hand such bytes over as lone surrogates, PEP 383)."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def local_walk(problems: list[tuple[str, str]]) -> Walk:
    """`os.walk` following links to folders (as a user expects), each real folder once: a link back to a
    folder already walked, and a folder that cannot be listed, are appended to `problems` (path, reason)."""

    def walk(top: str):
        seen: set[str] = set()

        def failed(err: OSError) -> None:
            problems.append((err.filename, f"cannot list the folder: {err.strerror or err}"))

        for dirpath, dirnames, filenames in os.walk(top, followlinks=True, onerror=failed):
            real = os.path.realpath(dirpath)
            if real in seen:
                dirnames[:] = []
                problems.append((dirpath, f"links to a folder that is listed already ({real}); not read twice"))
                continue
            seen.add(real)
            yield dirpath, dirnames, filenames

    return walk


def _class_files(class_dir: str, walk: Walk, ignored: list[tuple[str, str]]) -> Iterator[str]:
    """Paths relative to `class_dir` (POSIX separators) of every visible file below it; hidden ones go to
    `ignored` (relative to `class_dir`, folders with a trailing "/")."""
    for dirpath, dirnames, filenames in walk(class_dir):
        rel_dir = dirpath[len(class_dir):].strip("/").replace(os.sep, "/")
        if any(not _visible(part) for part in rel_dir.split("/") if part):
            continue  # fileio.walk on some filesystems ignores the pruning
        prefix = f"{rel_dir}/" if rel_dir else ""
        ignored.extend((f"{prefix}{d.rstrip('/')}/", HIDDEN_RULE) for d in dirnames if not _visible(d.rstrip("/")))
        dirnames[:] = [d for d in dirnames if _visible(d.rstrip("/"))]  # os.walk honours the pruning
        for name in filenames:
            if _visible(name):
                yield f"{prefix}{name}"
            else:
                ignored.append((f"{prefix}{name}", HIDDEN_RULE))


def list_image_folder(root: str, walk: Walk | None = None) -> ImageListing:
    """Lists `root` (default: `local_walk`; pass `walk=tfx.dsl.io.fileio.walk` for gs:// and other
    remote folders).

    Raises DataError when `root` is missing or holds no class folder."""
    root = str(root).rstrip("/") or "/"
    walk_problems: list[tuple[str, str]] = []
    walk = walk or local_walk(walk_problems)
    top = next(iter(walk(root)), None)
    if top is None:
        raise DataError(f"data folder {root} does not exist or is not a folder")
    folders = sorted(d.rstrip("/") for d in top[1] if _visible(d))
    ignored = [(f"{escape_name(d.rstrip('/'))}/", HIDDEN_RULE) for d in top[1] if not _visible(d.rstrip("/"))]
    ignored += [(escape_name(name), HIDDEN_RULE if not _visible(name) else ROOT_FILE_RULE) for name in top[2]]
    classes = tuple(sorted(escape_name(d) for d in folders))
    if not classes:
        raise DataError(
            f"data folder {root} holds no class folders: expected {root}/<class name>/<image file> "
            f"(found {len(top[2])} files and no sub-folder)"
        )
    files, rejected, paths = [], [], {}
    for folder in folders:
        class_name, class_ignored = escape_name(folder), []
        for rel in _class_files(f"{root}/{folder}", walk, class_ignored):
            image_id = f"{class_name}/{escape_name(rel)}"
            if image_id != f"{folder}/{rel}":
                paths[image_id] = f"{folder}/{rel}"
            extension = os.path.splitext(rel)[1].lower()
            if extension in IMAGE_EXTENSIONS:
                files.append((image_id, class_name))
            else:
                rejected.append((image_id, Problem(
                    "unsupported_extension",
                    f"not an image file name: extension {extension or '(none)'!r} is not one of "
                    f"{', '.join(IMAGE_EXTENSIONS)}",
                )))
        ignored += [(f"{class_name}/{escape_name(path)}", rule) for path, rule in class_ignored]
    for path, reason in walk_problems:
        rel = escape_name(os.path.relpath(path, root)).replace(os.sep, "/") + "/"
        rejected.append((rel, Problem("unlistable_folder", reason)))
    return ImageListing(root, classes, tuple(sorted(files)), tuple(sorted(rejected, key=lambda r: r[0])),
                        tuple(sorted(ignored)), paths)


def check_listing(listing: ImageListing) -> None:
    """Fails before any decoding when a class folder has no image file at all."""
    empty = [name for name, n in listing.files_per_class().items() if n == 0]
    if empty:
        raise DataError(
            f"class folder(s) {', '.join(repr(e) for e in empty)} in {listing.root} hold no "
            f"{'/'.join(IMAGE_EXTENSIONS)} file: every class needs at least one valid image"
        )
