"""Image files named on the command line: files or folders (recursively), read in chunks."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence

MAX_FILE_BYTES = 64 << 20  # larger files are not read: no photo of sensible size is that big


def collect_files(paths: Iterable[str]) -> tuple[list[str], list[tuple[str, str]], list[str]]:
    """(candidate files in a stable order, [(path, reason)] for the names that cannot be used, hidden
    entries found in folders): every name given or found is in exactly one of the three.

    Every file is accounted for exactly once, as ingestion accounts for its folders
    (components/ingest/files.py): a path is `~`-expanded even when the shell left it alone; folders
    are walked recursively in sorted order (a folder's files, then its sub-folders), linked folders
    included; a file reached a second time, under another spelling, through a link, or given twice,
    is listed once and each other name is skipped as "the same file as ..."; a link back to a folder
    being walked is skipped, not followed round; hidden entries (".DS_Store", ".git") are ignored and
    returned apart, for a count rather than a line each. Whether a candidate is an image is decided
    when it is read."""
    files: list[str] = []
    problems: list[tuple[str, str]] = []
    hidden: list[str] = []
    first_name: dict[str, str] = {}  # real path -> the name it was first listed under

    def add(path: str) -> None:
        real = os.path.realpath(path)
        if real in first_name:
            problems.append((path, f"the same file as {first_name[real]}"))
        else:
            first_name[real] = path
            files.append(path)

    def walk(folder: str, ancestors: tuple[str, ...]) -> None:
        try:
            names = sorted(os.listdir(folder))
        except OSError as err:
            problems.append((folder, f"cannot list: {err.strerror or err}"))
            return
        folders = []
        for name in names:
            path = os.path.join(folder, name)
            if name.startswith("."):
                hidden.append(path)
            elif os.path.isdir(path):
                folders.append(path)
            elif os.path.isfile(path):
                add(path)
            else:
                problems.append((path, "not a file or folder (a broken link?)"))
        for path in folders:
            real = os.path.realpath(path)
            if real in ancestors:
                problems.append((path, f"a link back to {real}, not followed"))
            else:
                walk(path, (*ancestors, real))

    for given in paths:
        path = os.path.expanduser(given)
        if os.path.isfile(path):
            add(path)
        elif os.path.isdir(path):
            walk(path, (os.path.realpath(path),))
        else:
            problems.append((given, "no such file or folder"))
    return files, problems, hidden


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
