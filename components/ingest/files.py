r"""Listing image folders (pure Python, no TensorFlow); the bytes are checked by `serving/images.py`.

Two layouts: `list_image_folder` reads a folder of class folders (labelled images);
`list_unlabeled_folder` reads every image below a folder at any depth, its sub-folders (by date,
by camera...) being just folders, never classes (unlabelled images, class None).

Layout (that of tf_flowers' `flower_photos`): `ROOT/<class>/<file>.jpg`; `.jpg`, `.jpeg` and `.png` in any
letter case, and files in nested folders belong to the class folder they are in. Every file is accounted
for: ingested, ignored by a rule (`ImageListing.ignored`: hidden files and folders, i.e. a leading dot, and
files directly in ROOT such as LICENSE.txt; a folder holding a `simsiam-tfx` run, `RUN_RULE`), or rejected
with a reason. Any other file in a class folder is a candidate image; the ones that are not JPEG/PNG files
are rejected. Links to files and folders are
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
    files: tuple[tuple[str, str | None], ...]  # (image_id, class_name or None: unlabelled): to read and validate
    rejected: tuple[tuple[str, Problem], ...] = field(default=())  # (image_id, problem) found by listing
    ignored: tuple[tuple[str, str], ...] = field(default=())  # (path, rule); a folder's path ends with "/"
    paths: dict[str, str] = field(default_factory=dict)  # image_id -> path below root, where they differ

    @property
    def labels(self) -> dict[str, int]:
        return {name: index for index, name in enumerate(self.classes)}

    def files_per_class(self) -> dict[str, int]:
        counts = dict.fromkeys(self.classes, 0)
        for _, class_name in self.files:
            if class_name is not None:
                counts[class_name] += 1
        return counts

    @property
    def unlabeled(self) -> int:
        """How many candidate files carry no label."""
        return sum(class_name is None for _, class_name in self.files)


HIDDEN_RULE = "hidden (the name starts with a dot)"
ROOT_FILE_RULE = "not in a class folder (files directly in the data folder are not images of a class)"
# What `simsiam-tfx run` and `ingest` write in their --output folder (pipeline/local_runner.run_folder_paths):
# ML Metadata's SQLite file and TFX's pipeline root. A folder holding both is a run (its plots, projector
# sprite and examples are not photos), never read, even as part of a larger data folder.
METADATA_FILE = "metadata.sqlite"
PIPELINE_ROOT_DIR = "pipeline_root"
RUN_FOLDER_MARKERS = (METADATA_FILE, PIPELINE_ROOT_DIR)
RUN_RULE = "holds a simsiam-tfx run (metadata.sqlite and pipeline_root/): its files are not photos"


def _holds_run(dirnames: Iterable[str], filenames: Iterable[str]) -> bool:
    return RUN_FOLDER_MARKERS[0] in filenames and RUN_FOLDER_MARKERS[1] in {d.rstrip("/") for d in dirnames}


def _not_a_run(folder: str, what: str, top: tuple[str, list[str], list[str]]) -> None:
    if _holds_run(top[1], top[2]):
        raise DataError(
            f"{what} {folder} holds a simsiam-tfx run (metadata.sqlite and pipeline_root/), not photos: "
            "give the folder of the photos, not a run's --output"
        )


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
    `ignored` (relative to `class_dir`, folders with a trailing "/"), and so does a folder holding a run
    (RUN_RULE; `class_dir` itself as "")."""
    runs: list[str] = []
    for dirpath, dirnames, filenames in walk(class_dir):
        rel_dir = dirpath[len(class_dir) :].strip("/").replace(os.sep, "/")
        if any(not _visible(part) for part in rel_dir.split("/") if part):
            continue  # fileio.walk on some filesystems ignores the pruning
        prefix = f"{rel_dir}/" if rel_dir else ""
        if any(prefix.startswith(run) for run in runs):
            continue  # below a run folder (fileio.walk may ignore the pruning)
        if _holds_run(dirnames, filenames):
            dirnames[:] = []
            runs.append(prefix)
            ignored.append((prefix, RUN_RULE))
            continue
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
    _not_a_run(root, "data folder", top)
    files, rejected, paths, classes = [], [], {}, []
    for folder in folders:
        class_name, class_ignored = escape_name(folder), []
        for rel in _class_files(f"{root}/{folder}", walk, class_ignored):
            image_id = f"{class_name}/{escape_name(rel)}"
            if image_id != f"{folder}/{rel}":
                paths[image_id] = f"{folder}/{rel}"
            _image_or_rejected(image_id, class_name, files, rejected)
        ignored += [(f"{class_name}/{escape_name(path)}", rule) for path, rule in class_ignored]
        if ("", RUN_RULE) not in class_ignored:  # a run's folder is no class
            classes.append(class_name)
    classes = tuple(sorted(classes))
    if not classes:
        found = f"{len(folders)} sub-folder(s), each holding a simsiam-tfx run" if folders else "no sub-folder"
        raise DataError(
            f"data folder {root} holds no class folders: expected {root}/<class name>/<image file> "
            f"(found {len(top[2])} files and {found})"
        )
    rejected += _walk_problems(root, walk_problems)
    return ImageListing(
        root, classes, tuple(sorted(files)), tuple(sorted(rejected, key=lambda r: r[0])), tuple(sorted(ignored)), paths
    )


def _image_or_rejected(image_id: str, class_name: str | None, files: list, rejected: list) -> None:
    extension = os.path.splitext(image_id)[1].lower()
    if extension in IMAGE_EXTENSIONS:
        files.append((image_id, class_name))
    else:
        rejected.append(
            (
                image_id,
                Problem(
                    "unsupported_extension",
                    f"not an image file name: extension {extension or '(none)'!r} is not one of "
                    f"{', '.join(IMAGE_EXTENSIONS)}",
                ),
            )
        )


def _walk_problems(root: str, walk_problems: list[tuple[str, str]]) -> list[tuple[str, Problem]]:
    return [
        (escape_name(os.path.relpath(path, root)).replace(os.sep, "/") + "/", Problem("unlistable_folder", reason))
        for path, reason in walk_problems
    ]


def list_unlabeled_folder(root: str, walk: Walk | None = None) -> ImageListing:
    """Lists every visible file below `root`, at any depth, as an unlabelled candidate image
    (class None; image id = the path below `root`). Hidden files and folders are ignored, files with
    another extension than JPEG/PNG rejected, links followed, as in `list_image_folder`.

    Raises DataError when `root` is missing or holds no JPEG/PNG file at all."""
    root = str(root).rstrip("/") or "/"
    walk_problems: list[tuple[str, str]] = []
    walk = walk or local_walk(walk_problems)
    top = next(iter(walk(root)), None)
    if top is None:
        raise DataError(f"unlabelled image folder {root} does not exist or is not a folder")
    _not_a_run(root, "unlabelled image folder", top)
    files, rejected, paths, ignored = [], [], {}, []
    for rel in _class_files(root, walk, ignored):
        image_id = escape_name(rel)
        if image_id != rel:
            paths[image_id] = rel
        _image_or_rejected(image_id, None, files, rejected)
    rejected += _walk_problems(root, walk_problems)
    if not files:
        raise DataError(
            f"unlabelled image folder {root} holds no {'/'.join(IMAGE_EXTENSIONS)} file ({len(rejected)} other files)"
        )
    return ImageListing(
        root,
        (),
        tuple(sorted(files)),
        tuple(sorted(rejected, key=lambda r: r[0])),
        tuple(sorted((escape_name(p), rule) for p, rule in ignored)),
        paths,
    )


def combine_listings(labeled: ImageListing, unlabeled: ImageListing) -> ImageListing:
    """A folder of class folders plus a folder of unlabelled images, as one listing whose ids are the
    paths below each folder. Raises DataError when an id is in both (the two folders mirror each
    other: ids must name one file)."""
    clash = sorted({i for i, _ in labeled.files} & {i for i, _ in unlabeled.files})
    if clash:
        raise DataError(
            f"{len(clash)} image path(s) appear both under the labelled folder {labeled.root} and the "
            f"unlabelled folder {unlabeled.root} (e.g. {clash[0]!r}); an image id is its path below its "
            "folder and must name one file: move the unlabelled images into a folder of their own"
        )
    return ImageListing(
        labeled.root,
        labeled.classes,
        tuple(sorted(labeled.files + unlabeled.files)),
        tuple(sorted(labeled.rejected + unlabeled.rejected, key=lambda r: r[0])),
        tuple(sorted(labeled.ignored + unlabeled.ignored)),
        {**labeled.paths, **unlabeled.paths},
    )


def folder_listing(
    data_dir: str | None, unlabeled_dir: str | None, walk_for: Callable[[str], Walk | None] = lambda root: None
) -> ImageListing:
    """The listing of a folder of class folders, a folder of unlabelled images, or both (`walk_for(root)`:
    the walk for that folder, None for `local_walk`). Raises DataError when a folder is missing, a class
    folder holds no image, or an image path is in both; ValueError without a folder."""
    labeled = list_image_folder(data_dir, walk=walk_for(data_dir)) if data_dir else None
    if labeled:
        check_listing(labeled)
    unlabeled = list_unlabeled_folder(unlabeled_dir, walk=walk_for(unlabeled_dir)) if unlabeled_dir else None
    if labeled and unlabeled:
        return combine_listings(labeled, unlabeled)
    if not (labeled or unlabeled):
        raise ValueError("give a folder of class folders, a folder of unlabelled images, or both")
    return labeled or unlabeled


def check_listing(listing: ImageListing) -> None:
    """Fails before any decoding when a class folder has no image file at all."""
    empty = [name for name, n in listing.files_per_class().items() if n == 0]
    if empty:
        raise DataError(
            f"class folder(s) {', '.join(repr(e) for e in empty)} in {listing.root} hold no "
            f"{'/'.join(IMAGE_EXTENSIONS)} file: every class needs at least one valid image"
        )
