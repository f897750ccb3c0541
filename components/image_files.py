"""Listing and validating a folder of class sub-folders of images (pure Python + Pillow, no TensorFlow).

Layout (that of tf_flowers' `flower_photos`): `ROOT/<class>/<file>.jpg`; `.jpg`, `.jpeg` and `.png` in any
letter case, and files in nested folders belong to the class folder they are in. Hidden files and
folders (a leading dot) and files directly in ROOT (such as LICENSE.txt) are ignored; any other file in a
class folder is a candidate image, and the ones that are not JPEG/PNG files are rejected with a reason.
"""

from __future__ import annotations

import io
import os
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# Pillow calls JPEGs with a multi-picture extension (many phone cameras) "MPO"; they are plain JPEGs to TF.
ACCEPTED_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG"}

Walk = Callable[[str], Iterable[tuple[str, list[str], list[str]]]]


class DataError(ValueError):
    """The input cannot be ingested; the message names the folder, class or share at fault.
    `report` is the ingestion report (a dict) when the files were validated: TFX deletes the outputs
    of a failed execution, the report file next to the examples included."""

    def __init__(self, message: str, report: dict | None = None):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class ImageLimits:
    """Sizes outside these bounds are rejected before decoding (decompression bombs, 1-pixel slivers)."""

    min_side: int = 8
    max_side: int = 16_384
    max_pixels: int = 40_000_000

    def describe(self) -> str:
        return f"each side {self.min_side}-{self.max_side} px, at most {self.max_pixels:,} pixels"


@dataclass(frozen=True)
class Problem:
    """Why a file was rejected: `kind` is a short counter name, `reason` the text for the report."""

    kind: str
    reason: str


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


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_structure_problem(data: bytes) -> str | None:
    """libpng (what TensorFlow decodes PNGs with) needs every chunk up to IEND, with correct CRCs on the
    critical ones; Pillow decodes a PNG whose IEND is cut off, so walk the chunks here."""
    view, pos = memoryview(data), len(_PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length = int.from_bytes(view[pos:pos + 4], "big")
        chunk_type = bytes(view[pos + 4:pos + 8])
        end = pos + 12 + length
        if end > len(data):
            return f"truncated PNG: chunk {chunk_type.decode('latin-1')} is cut off after {len(data)} bytes"
        critical = not chunk_type[0] & 0x20
        if critical and zlib.crc32(view[pos + 4:end - 4]) != int.from_bytes(view[end - 4:end], "big"):
            return f"corrupt PNG: bad checksum in chunk {chunk_type.decode('latin-1')}"
        if chunk_type == b"IEND":
            return None
        pos = end
    return f"truncated PNG: the file ends after {len(data)} bytes without an IEND chunk"


def _jpeg_structure_problem(data: bytes) -> str | None:
    """TensorFlow fails on a JPEG whose end-of-image marker is missing or damaged; Pillow decodes it when
    the image data is complete. Skip the segments before the first scan (an EXIF thumbnail has its own
    markers), then look for EOI (scan data cannot contain FF D9: its FF bytes are stuffed)."""
    pos = 2  # after SOI
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif marker == 0xDA:  # start of scan
            return None if data.find(b"\xff\xd9", pos) != -1 else "truncated JPEG: no end-of-image marker"
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            pos += 2
        else:
            pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return None  # not a layout we can follow: decoding decides


def check_image_bytes(data: bytes, limits: ImageLimits = ImageLimits()) -> Problem | None:
    """None when `data` is a JPEG or PNG of sensible size that decodes completely; else why not.

    The size is checked from the header before anything is decoded."""
    if not data:
        return Problem("empty", "empty file (0 bytes)")
    image_format = None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = ACCEPTED_FORMATS.get(image.format or "")
            if image_format is None:
                return Problem("unsupported_format",
                               f"unsupported image format {image.format} (only JPEG and PNG are accepted)")
            width, height = image.size
            if (min(width, height) < limits.min_side or max(width, height) > limits.max_side
                    or width * height > limits.max_pixels):
                return Problem("bad_dimensions", f"absurd dimensions {width}x{height} ({limits.describe()})")
            structure = _png_structure_problem if image_format == "PNG" else _jpeg_structure_problem
            if problem := structure(data):
                return Problem("corrupt", problem)
            image.load()
    except UnidentifiedImageError:
        return Problem("not_an_image", f"not an image: the content ({len(data)} bytes, starting "
                                       f"{bytes(data[:8])!r}) is no format Pillow knows")
    except Image.DecompressionBombError as err:  # Pillow refuses to open beyond ~179M pixels
        pixels = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{int(pixels.group(1)):,} pixels" if pixels else str(err)
        return Problem("bad_dimensions", f"absurd dimensions: {size} ({limits.describe()})")
    except (OSError, SyntaxError, ValueError, EOFError) as err:  # what Pillow raises on broken data
        return Problem("corrupt", f"corrupt or truncated {image_format or 'image'}: {err}")
    return None
