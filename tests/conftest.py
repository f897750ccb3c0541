"""Shared fixtures: a small real sample of Flowers, one smoke run of the whole pipeline, and the hooks
that start the background checks (tests/background.py) and order the tests that read them last."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import background

REPO = Path(__file__).resolve().parents[1]
FLOWERS = REPO.parent / "shared" / "flowers" / "flower_photos"
SMOKE_PER_CLASS = 16


# Test modules that read the one smoke pipeline run (the `smoke_run` fixture below).
SMOKE_RUN_MODULES = frozenset(
    str(path.relative_to(REPO)) for path in (REPO / "tests").rglob("test_*.py") if "smoke_run" in path.read_text()
)


def pytest_xdist_make_scheduler(config, log):
    """`make test` runs one pytest-xdist worker per core (`--dist loadscope`): each test module stays
    on one worker (its module fixtures are built once), and so do all the modules that read the smoke
    run, so that session fixture is built once, not once per worker."""
    from xdist.scheduler import LoadScopeScheduling

    class SmokeRunScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "smoke_run" if module in SMOKE_RUN_MODULES else module

    return SmokeRunScheduling(config, log)


def _xdist(config) -> bool:
    return bool(os.environ.get("PYTEST_XDIST_WORKER") or getattr(config.option, "numprocesses", None))


def pytest_collection_modifyitems(config, items) -> None:
    """One process: the tests that read a background check last, in the checks' start order, so the
    checks run beside the rest of the suite. Under pytest-xdist: the smoke run's tests first (the
    longest group starts at once; the checks then run inline)."""
    if _xdist(config):
        items.sort(key=lambda item: item.nodeid.split("::", 1)[0] not in SMOKE_RUN_MODULES)
        return
    order = {name: i for i, name in enumerate(background.names())}
    items.sort(key=lambda item: max((order[f] + 1 for f in item.fixturenames if f in order), default=0))


def pytest_collection_finish(session) -> None:
    """Starts the background checks that the collected tests read (none under xdist or --collect-only)."""
    if _xdist(session.config) or session.config.option.collectonly:
        return
    background.LANE.start({f for item in session.items for f in item.fixturenames})


def pytest_sessionfinish(session, exitstatus) -> None:
    background.LANE.close()


def pytest_terminal_summary(terminalreporter) -> None:
    lines = background.LANE.summary()
    if lines:
        terminalreporter.section("background checks")
        for line in lines:
            terminalreporter.write_line(line)


def flowers_sample(root: Path, per_class: int) -> Path:
    """Links the first `per_class` images of each class (sorted names) into `root`: no copies."""
    if not FLOWERS.is_dir():
        pytest.skip(f"real Flowers data not found at {FLOWERS}")
    for class_dir in sorted(p for p in FLOWERS.iterdir() if p.is_dir()):
        target = root / class_dir.name
        target.mkdir(parents=True, exist_ok=True)
        for image in sorted(class_dir.glob("*.jpg"))[:per_class]:
            (target / image.name).symlink_to(image)
    return root


def run_cli(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "simsiam-tfx"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def unlabeled_sample(root: Path, start: int, count: int) -> Path:
    """Links images `start` .. `start + count - 1` (sorted names) of each Flowers class into `root`, in
    folders named by camera-style numbers, not classes: unlabelled photos."""
    if not FLOWERS.is_dir():
        pytest.skip(f"real Flowers data not found at {FLOWERS}")
    for i, class_dir in enumerate(sorted(p for p in FLOWERS.iterdir() if p.is_dir())):
        target = root / f"card{i}"
        target.mkdir(parents=True, exist_ok=True)
        for image in sorted(class_dir.glob("*.jpg"))[start : start + count]:
            (target / image.name).symlink_to(image)
    return root


@background.background_check("smoke_run")
def _smoke_run(workdir: Path) -> dict:
    """One `simsiam-tfx run --profile smoke` on 80 labelled real images plus 20 unlabelled ones (other
    Flowers photos), with the default Beam workers (1: Beam in the command's process;
    tests/components/test_example_gen.py runs the 2-process path); returns its summary and paths.
    `run_args` repeat its input options."""
    photos = flowers_sample(workdir / "flowers", SMOKE_PER_CLASS)
    unlabeled = unlabeled_sample(workdir / "unlabeled", SMOKE_PER_CLASS, 4)
    out = workdir / "run"
    run_args = ["--data-dir", str(photos), "--unlabeled-dir", str(unlabeled)]
    result = run_cli("run", "--profile", "smoke", *run_args, "--output", str(out))
    assert result.returncode == 0, f"smoke run failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    summary = json.loads((out / "summary.json").read_text())
    return {
        "out": out,
        "summary": summary,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "data_dir": photos,
        "unlabeled_dir": unlabeled,
        "run_args": run_args,
    }


@pytest.fixture(scope="session")
def smoke_run() -> dict:
    return background.result("smoke_run")
