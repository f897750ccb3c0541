"""Files written whole or not at all: a temporary file beside the target, renamed onto it once complete.

Every file a user reads or keeps (`embed`'s index, OUT/summary.json, OUT/report.html,
OUT/ingestion.json) is written this way. Written in place, a full disk ended `embed` in a traceback
after all the work and left the previous index cut to its first kilobyte (`search` then failed with
`BadZipFile`); now the previous file stays as it was and the caller reports the OSError in one line.
`os.replace` within one folder is atomic on POSIX: a reader sees the old file or the new one.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from typing import IO


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Opens a temporary file in `path`'s folder for writing (`mode` "w" or "wb"); when the block ends
    without an exception it is flushed to disk and renamed onto `path`, keeping the permissions the
    previous file had (else the umask's, as `open` gives). On an exception the temporary file is
    removed and `path` is left untouched."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=encoding) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        try:
            permissions = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            permissions = 0o666 & ~_current_umask()
        os.chmod(tmp, permissions)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """`text` (UTF-8) into `path`, whole or not at all (`atomic_file`)."""
    with atomic_file(path, "w", encoding="utf-8") as file:
        file.write(text)
