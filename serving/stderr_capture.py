"""What C++ libraries write to standard error, read back.

libjpeg, absl and XLA write straight to file descriptor 2, past Python's `sys.stderr`, so the only way
to see (or drop) their lines is to point descriptor 2 at a file for a while. Descriptor 2 belongs to
the whole process: keep the block short, and serialise concurrent users (serving/jpeg_scan.py holds a
lock).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def descriptor_2_captured() -> Iterator[list[bytes]]:
    """Inside, everything written to file descriptor 2 goes to a temporary file; on the way out,
    descriptor 2 is restored (also on an exception) and the yielded list receives the captured lines
    (bytes, line ends kept), in order. `sys.stderr` is flushed on both sides, so Python's own pending
    lines land where they were written."""
    lines: list[bytes] = []
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield lines
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                sink.seek(0)
                lines.extend(sink.read().splitlines(keepends=True))
    finally:
        os.close(saved)
