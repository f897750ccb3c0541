"""Progress lines while LocalDagRunner works: one line when a component starts and when it ends."""

from __future__ import annotations

import os
import threading
import time

from pipeline.mlmd import open_store, pipeline_runs, run_executions


class ComponentProgress:
    """Polls ML Metadata in a background thread (the runner has no callbacks)."""

    def __init__(self, sqlite_path: str, interval_s: float = 2.0, printer=print):
        self.sqlite_path, self.interval_s, self.printer = sqlite_path, interval_s, printer
        self._known_runs: set[int] = set()
        self._seen: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> ComponentProgress:
        if os.path.exists(self.sqlite_path):
            self._known_runs = {c.id for c in pipeline_runs(open_store(self.sqlite_path))}
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.poll()

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

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.poll()
