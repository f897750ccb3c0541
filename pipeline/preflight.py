"""Checks of the paths a command writes, answered in a second, before TensorFlow loads (standard library only).

`simsiam-tfx run` and `ingest` write a run folder (--output) and read photo folders (--data-dir,
--unlabeled-dir); `embed` writes one file. Without these checks an --output under a regular file
ended in a `NotADirectoryError` traceback once TensorFlow had loaded, an --output inside
the photo folder was read back as photos by the next run (its plots, its projector sprite, or a
class folder 'out' with no image), and a second command on a busy run folder died late in
ML Metadata ("Concurrent writes aborted"). Each check raises `PreflightError`, whose message is the
one line the command prints.

One command per run folder: `claim_run_folder` holds an exclusive `flock` on OUT/simsiam-tfx.lock
(which names its holder: command, pid, start time) for as long as the command runs. The kernel
drops the lock when the process ends, killed or not, so a killed run never blocks the next one;
the file itself stays and means nothing without the lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time
from collections.abc import Mapping

LOCK_FILE = "simsiam-tfx.lock"


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
            raise PreflightError(
                f"--output {output} is inside {flag} {folder}: the run's files would be read as "
                "photos by the next run; choose an --output outside the photo folders"
            )
        if common == real_out:
            raise PreflightError(
                f"{flag} {folder} is inside --output {output}: a run folder holds the run's own files "
                "and must not hold photos; choose an --output outside the photo folders"
            )
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


class RunFolderLock:
    """The open lock file of `claim_run_folder`; the lock lasts until `release()` or the process ends."""

    def __init__(self, file) -> None:
        self._file = file

    def release(self) -> None:
        self._file.close()


def _holder(text: str) -> str:
    """'`simsiam-tfx run` (pid 123) since 2026-12-06 11:20:03 UTC' from the lock file's JSON."""
    try:
        info = json.loads(text)
        return f"`{info['command']}` (pid {info['pid']}) since {info['since']}"
    except (ValueError, KeyError, TypeError):
        return "another command (it has not written its name yet)"


def claim_run_folder(out: str, command: str) -> RunFolderLock:
    """Creates the run folder `out`, checks it is writable and takes its lock for `command`; raises
    PreflightError when it cannot be made or written, or another process holds the lock."""
    _make_writable_folder("--output", out)
    path = os.path.join(out, LOCK_FILE)
    try:
        file = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the whole command
    except OSError as err:
        raise PreflightError(f"cannot open the lock file {path}: {err.strerror or err}") from None
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.seek(0)
        holder = _holder(file.read())
        file.close()
        raise PreflightError(
            f"{out} is in use by {holder}: one command per output folder; wait for it to end or choose another --output"
        ) from None
    file.seek(0)
    file.truncate()
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    file.write(json.dumps({"command": command, "pid": os.getpid(), "since": since}) + "\n")
    file.flush()
    return RunFolderLock(file)
