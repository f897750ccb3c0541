"""XLA's start-up lines, kept out of the terminal.

On its first compilation in a process, XLA writes four lines through absl's C++ logging straight to
file descriptor 2: "WARNING: All log messages before absl::InitializeLog() is called are written to
STDERR", "XLA service 0x... initialized for platform Host ...", "StreamExecutor device (0): ..." and
"Compiled cluster using XLA! ...". They are notices, but to a user they look like errors, and
`TF_CPP_MIN_LOG_LEVEL` does not reach them (absl's own minimum level is not exported from
libtensorflow). XLA logs its start-up once per process, so `start_xla_quietly` compiles a trivial
function first while file descriptor 2 points at a temporary file, then writes back every captured
line but those notices; the real compiles that follow (the SimSiam augmentation is always
XLA-compiled) print nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

from serving.stderr_capture import descriptor_2_captured

# absl's prefix: severity + date, time, thread id, then the source file and line of XLA's notices.
XLA_STARTUP_LINE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} [\d:.]+ +\d+ (service\.cc|device_compiler\.h):\d+\] .*)$"
)


@contextlib.contextmanager
def native_stderr_filtered(drop: re.Pattern = XLA_STARTUP_LINE) -> Iterator[None]:
    """Inside, whatever writes to file descriptor 2 (C++ included) goes to a temporary file; on the
    way out, its lines that do not match `drop` are written back to descriptor 2, in order.

    Keep the block short: what it captures shows only when it ends (a hard crash inside loses it).
    """
    captured: list[bytes] = []
    try:
        with descriptor_2_captured() as captured:
            yield
    finally:
        kept = [line for line in captured if not drop.match(line.decode(errors="replace").rstrip("\n"))]
        if kept:
            os.write(2, b"".join(kept))


def start_xla_quietly() -> None:
    """Compiles a trivial function with XLA under `native_stderr_filtered`, so XLA's once-per-process
    start-up notices are dropped; does nothing visible when XLA has already started."""
    import tensorflow as tf

    with native_stderr_filtered():
        tf.function(lambda x: x + 1.0, jit_compile=True)(tf.constant(0.0))
