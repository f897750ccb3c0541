"""Slow, self-contained checks that run in a background thread beside the rest of the suite.

A few fixtures spend a minute or more each in a subprocess that mostly keeps one core busy: a whole
TFX pipeline (TFX and Beam orchestrate on one thread between short training bursts), XLA and JAX
compiling a ResNet step (single-threaded). Run one after another in the test process, they left the
second core of the 2-core CI machine idle for minutes. So each such fixture is a *background check*:

- `@background_check(name)` registers a function `(workdir: Path) -> result` under the name of the
  fixture that returns it; `result(name)` gives that fixture its value.
- When collection ends (`tests/conftest.py`), every check that a collected test needs starts in one
  worker thread, in registration order, one at a time: at most one background subprocess beside the
  test that runs in the foreground. The tests that read a check are ordered last, so they rarely wait.
- Under pytest-xdist (several processes already share the cores), with `--collect-only`, or for a
  check nobody started, `result` runs the check inline: same value, no background.

A check's exception reaches the fixture (and so every test that reads it) as it would inline. Each
check gets its own folder under one temporary root, removed when the session ends. The terminal
summary lists when each check started, how long it ran and how long the foreground waited for it:
what to look at first when the suite gets slower (docs/development.md).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

Check = Callable[[Path], Any]

_CHECKS: dict[str, Check] = {}


def background_check(name: str) -> Callable[[Check], Check]:
    """Registers `check` as the background check behind the fixture called `name`."""

    def register(check: Check) -> Check:
        if name in _CHECKS and _CHECKS[name] is not check:
            raise ValueError(f"background check {name!r} is registered twice")
        _CHECKS[name] = check
        return check

    return register


def names() -> list[str]:
    """The registered checks, in registration (and so start) order."""
    return list(_CHECKS)


class _Lane:
    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._futures: dict[str, Future] = {}
        self._root: Path | None = None
        self._t0 = time.monotonic()
        self._ran: dict[str, tuple[float, float]] = {}  # name -> (started, seconds), from the lane's start
        self._waited: dict[str, float] = {}  # name -> seconds the foreground waited for its result

    def _run(self, name: str) -> Any:
        started = time.monotonic()
        try:
            return _CHECKS[name](self._workdir(name))
        finally:
            self._ran[name] = (started - self._t0, time.monotonic() - started)

    def _workdir(self, name: str) -> Path:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="simsiam-tfx-tests-"))
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self._root))

    def start(self, wanted: Iterable[str]) -> None:
        wanted = set(wanted)
        todo = [name for name in _CHECKS if name in wanted and name not in self._futures]
        if not todo:
            return
        if self._pool is None:
            self._t0 = time.monotonic()
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="background-check")
        for name in todo:
            self._futures[name] = self._pool.submit(self._run, name)

    def result(self, name: str) -> Any:
        if name not in _CHECKS:
            raise KeyError(f"no background check {name!r}; registered: {names()}")
        waiting = time.monotonic()  # inline, the foreground waits for the whole check
        future = self._futures.get(name)
        if future is None:  # not started (xdist, or a fixture requested outside the collected set)
            future = self._futures[name] = Future()
            try:
                future.set_result(self._run(name))
            except BaseException as error:  # noqa: BLE001 - stored, re-raised to every reader below
                future.set_exception(error)
        try:
            return future.result()
        finally:
            self._waited.setdefault(name, time.monotonic() - waiting)

    def summary(self) -> list[str]:
        """One line per check that ran: start (s after the lane started), duration and the foreground's wait."""
        return [
            f"{name}: started +{started:.0f} s, ran {seconds:.0f} s, waited for {self._waited.get(name, 0):.0f} s"
            for name, (started, seconds) in sorted(self._ran.items(), key=lambda item: item[1][0])
        ]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)


LANE = _Lane()


def result(name: str) -> Any:
    """The value of background check `name`, waiting for it (or running it here) if need be."""
    return LANE.result(name)
