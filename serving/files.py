"""Image files named on the command line: files or folders (recursively), read in chunks."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence

MAX_FILE_BYTES = 64 << 20  # larger files are not read: no photo of sensible size is that big


def collect_files(paths: Iterable[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(candidate files in a stable order, [(path, reason)] for paths that cannot be used).

    Folders are walked recursively in sorted order, skipping hidden entries; every other file is a
    candidate, and whether it is an image is decided when it is read."""
    files, problems = [], []
    for path in paths:
        if os.path.isfile(path):
            files.append(path)
        elif os.path.isdir(path):
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                files.extend(os.path.join(dirpath, f) for f in sorted(filenames) if not f.startswith("."))
        else:
            problems.append((path, "no such file or folder"))
    return list(dict.fromkeys(files)), problems


def read_file(path: str) -> tuple[bytes | None, str | None]:
    """(bytes, None), or (None, reason) when the file cannot be read or is too large."""
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            return None, f"too large for an image ({size:,} bytes > {MAX_FILE_BYTES:,})"
        with open(path, "rb") as f:
            return f.read(), None
    except OSError as err:
        return None, f"cannot read: {err.strerror or err}"


def chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
