"""Checks of the paths a command writes, answered in a second, before TensorFlow loads (standard library only).

`simsiam-tfx run` and `ingest` write a run folder (--output) and read photo folders (--data-dir,
--unlabeled-dir); `embed` writes one file. Without these checks an --output under a regular file
ended in a `NotADirectoryError` traceback after TensorFlow had loaded (~40 s), an --output inside
the photo folder was read back as photos by the next run (its plots, its projector sprite, or a
class folder 'out' with no image). Each check raises `PreflightError`, whose message is the one
line the command prints.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping


class PreflightError(Exception):
    """Why a command cannot start, in one line (the command prints it as `error: ...`)."""


def _local(path: str | None) -> bool:
    return bool(path) and "://" not in path


def _not_under_a_file(flag: str, path: str) -> None:
    """Raises when a file stands where one of the parent folders of `path` should be."""
    parent = os.path.dirname(path)
    while not os.path.isdir(parent):
        if os.path.exists(parent):
            raise PreflightError(f"{flag} {path} cannot be made: {parent} is a file, not a folder")
        parent = os.path.dirname(parent)


def _make_writable_folder(flag: str, folder: str) -> None:
    """Creates `folder` (and its parents) and writes a nameless file in it, so a later write will not
    be the first to find it read-only or unmakeable."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise PreflightError(f"{flag} {folder} is not a folder this user can write: {err.strerror or err}") from None


def check_output(output: str, inputs: Mapping[str, str | None]) -> str:
    """The absolute path of a run folder (--output), checked against the input folders `inputs`
    ({flag: folder or None}; URLs are not checked): raises PreflightError when it is a file or lies
    under one, when it is inside an input folder (the next run would read the run's files as photos)
    or holds one. Creates nothing: `claim_run_folder` does, once the inputs are checked too."""
    out = os.path.abspath(output)
    if os.path.exists(out) and not os.path.isdir(out):
        raise PreflightError(f"--output {output} is a file, not a folder")
    _not_under_a_file("--output", out)
    real_out = os.path.realpath(out)
    for flag, folder in inputs.items():
        if not _local(folder):
            continue
        real_in = os.path.realpath(folder)
        common = os.path.commonpath([real_out, real_in])
        if common == real_in:
            raise PreflightError(f"--output {output} is inside {flag} {folder}: the run's files would be read as "
                                 "photos by the next run; choose an --output outside the photo folders")
        if common == real_out:
            raise PreflightError(f"{flag} {folder} is inside --output {output}: a run folder holds the run's own files "
                                 "and must not hold photos; choose an --output outside the photo folders")
    return out


def check_output_file(flag: str, path: str) -> str:
    """The absolute path of a file a command will write (`embed --output`): raises PreflightError when it
    is a folder, lies under a regular file, or its folder cannot be made or written. Creates the folder."""
    target = os.path.abspath(path)
    if os.path.isdir(target):
        raise PreflightError(f"{flag} {path} is a folder; give a file name, e.g. {os.path.join(path, 'index.npz')}")
    _not_under_a_file(flag, target)
    _make_writable_folder(flag, os.path.dirname(target))
    return target


def claim_run_folder(out: str) -> None:
    """Creates the run folder `out` and checks it is writable; raises PreflightError when it cannot."""
    _make_writable_folder("--output", out)
