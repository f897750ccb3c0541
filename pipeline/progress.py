"""Progress lines while LocalDagRunner works: one line when a component starts and when it ends, and
the ImageExampleGen's count of validated files."""

from __future__ import annotations

import os
import tempfile
import threading
import time

from pipeline.mlmd import open_store, pipeline_runs, run_executions


class _Poller:
    """Calls `poll()` every `interval_s` seconds in a daemon thread between `_start()` and `_finish()`,
    and once more at the end, so the last state is always printed."""

    join_timeout_s = 10.0

    def __init__(self, interval_s: float, printer):
        self.interval_s, self.printer = interval_s, printer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def poll(self) -> None:
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.poll()

    def _start(self) -> None:
        self._thread.start()

    def _finish(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.join_timeout_s)
        self.poll()


class ComponentProgress(_Poller):
    """Polls ML Metadata in a background thread (the runner has no callbacks)."""

    def __init__(self, sqlite_path: str, interval_s: float = 2.0, printer=print):
        super().__init__(interval_s, printer)
        self.sqlite_path = sqlite_path
        self._known_runs: set[int] = set()
        self._seen: dict[str, str] = {}

    def __enter__(self) -> ComponentProgress:
        if os.path.exists(self.sqlite_path):
            self._known_runs = {c.id for c in pipeline_runs(open_store(self.sqlite_path))}
        self._start()
        return self

    def __exit__(self, *exc) -> None:
        self._finish()

    def poll(self) -> None:
        if not os.path.exists(self.sqlite_path):
            return
        try:
            store = open_store(self.sqlite_path)
            runs = [r for r in pipeline_runs(store) if r.id not in self._known_runs]
            executions = run_executions(store, runs[-1], with_outputs=False) if runs else []
        except Exception:  # the runner may be mid-write; the next poll will see it
            return
        for ex in executions:
            if self._seen.get(ex.node_id) == ex.state:
                continue
            self._seen[ex.node_id] = ex.state
            stamp = time.strftime("%H:%M:%S")
            if ex.state == "RUNNING":
                self.printer(f"[{stamp}] > {ex.node_id} running", flush=True)
            else:
                self.printer(
                    f"[{stamp}] {'x' if ex.state == 'FAILED' else '+'} {ex.node_id} "
                    f"{ex.state.lower()} ({ex.seconds:.0f}s)",
                    flush=True,
                )


class FileProgress(_Poller):
    """Prints how many files the ExampleGen's workers have validated (they write counts to a folder)."""

    join_timeout_s = 5.0

    def __init__(self, total: int | None, interval_s: float = 2.0, printer=print):
        from components.ingest.executor import PROGRESS_DIR_ENV

        super().__init__(interval_s, printer)
        self.env, self.total = PROGRESS_DIR_ENV, total
        self._dir = tempfile.TemporaryDirectory(prefix="ingest-progress-")
        self._last = 0

    def count(self) -> int:
        n = 0
        for name in os.listdir(self._dir.name):
            try:
                with open(os.path.join(self._dir.name, name)) as f:
                    n += int(f.read() or 0)
            except (OSError, ValueError):
                pass  # a temporary file being renamed
        return n

    def poll(self) -> None:
        n = self.count()
        if n != self._last:
            self._last = n
            of = f" of {self.total:,}" if self.total else ""
            self.printer(f"           validated {n:,}{of} files", flush=True)

    def __enter__(self) -> FileProgress:
        os.environ[self.env] = self._dir.name  # Beam's worker processes inherit it
        self._start()
        return self

    def __exit__(self, *exc) -> None:
        self._finish()
        os.environ.pop(self.env, None)
        self._dir.cleanup()
