"""XLA's start-up notices are dropped from file descriptor 2; every other line written there stays."""

from __future__ import annotations

import os

from components.train.native_logs import native_stderr_filtered

NOTICES = (
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    b"I0000 00:00:1796590107.101633   29602 service.cc:145] XLA service 0x7f994400b500 initialized for platform "
    b"Host (this does not guarantee that XLA will be used). Devices:\n"
    b"I0000 00:00:1796590107.101707   29602 service.cc:153]   StreamExecutor device (0): Host, Default Version\n"
    b"I0000 00:00:1796590108.328645   29602 device_compiler.h:188] Compiled cluster using XLA!  This line is "
    b"logged at most once for the lifetime of the process.\n"
)


def test_the_notices_go_and_errors_and_tracebacks_stay_in_order(capfd) -> None:
    kept = (
        b"E0000 00:00:1796590108.5 29602 service.cc:145] an error from the same file stays\n"
        b"Traceback (most recent call last):\n"
        b"no newline at the end"
    )
    with native_stderr_filtered():
        os.write(2, b"first kept line\n" + NOTICES[:90])  # C++ writes in pieces: lines are judged whole
        os.write(2, NOTICES[90:] + kept)
    assert capfd.readouterr().err == "first kept line\n" + kept.decode()
