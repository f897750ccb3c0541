"""Peak resident memory, measured so that a child process does not report its parent's peak; and the
seconds since this process started.

`getrusage(RUSAGE_SELF).ru_maxrss` survives fork+exec on Linux: a process started by a large one
(pytest with TensorFlow loaded) reports the parent's peak. `VmHWM` belongs to the process's own
address space, which exec replaces, so it is the process's own high-water mark.
"""

from __future__ import annotations

import resource
import time


def own_peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def seconds_since_process_start() -> float:
    """Wall-clock seconds since the OS started this process: a command's `wall` includes the interpreter's
    start and the imports (TensorFlow, TFX) before its first line of work, which the user waits for too."""
    import psutil

    return time.time() - psutil.Process().create_time()


def children_peak_rss_mb() -> float:
    """The largest peak among finished child processes (e.g. Beam workers); see the module note."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
