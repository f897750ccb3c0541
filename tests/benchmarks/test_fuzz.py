"""The fuzz targets of benchmarks/fuzz.py run (200 inputs each, ~25 s) and find no crash, hang or memory blow-up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")
REPO = Path(__file__).resolve().parents[2]


def test_bounded_fuzz_run_of_both_targets_finds_no_crash(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        # A number of inputs, not of seconds: the same work on a loaded machine (a time-bounded run once
        # managed only 25 graph inputs while the background checks ran beside it).
        [sys.executable, "-m", "benchmarks.fuzz", "--runs", "200", "--seconds", "300", "--artifacts", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    runs = dict(re.findall(r"target=(\w+) executions=(\d+) seconds=[\d.]+ crashes=0", done.stdout))
    assert set(runs) == {"bytes", "graph"}, done.stdout
    assert all(int(n) >= 200 for n in runs.values()), runs  # it really ran the inputs, not just started


def test_seed_corpus_holds_every_orientation_alpha_and_a_bomb_header() -> None:
    from benchmarks.fuzz import seed_images
    from serving.images import check_image_bytes

    seeds = seed_images()
    assert {f"exif{i}.jpg" for i in range(1, 9)} <= set(seeds) and "rgba.png" in seeds
    assert all(check_image_bytes(data) is None for name, data in seeds.items() if name != "bomb_header.png")
    assert "absurd dimensions: 400,000,000 pixels" in check_image_bytes(seeds["bomb_header.png"]).reason
