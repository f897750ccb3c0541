"""`simsiam-tfx run` whose OUT/summary.json cannot be written: one line and exit 1, no traceback.

The file itself stays whole (serving/atomic.py); before, the OSError ended the command in a Python
traceback after all the work. The run here fails in its first step (every photo is damaged), the
quickest way through `run_and_summarise` to the summary write."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_summary_json_that_cannot_be_written_fails_in_one_line(tmp_path: Path) -> None:
    root, out = tmp_path / "data", tmp_path / "out"
    for class_name in ("a", "b"):
        (root / class_name).mkdir(parents=True)
        for i in range(20):  # JPEG magic bytes, then nothing a decoder can use
            (root / class_name / f"{class_name}_{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    (out / "summary.json").mkdir(parents=True)  # a folder where the summary goes: its write fails
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", "--profile", "smoke", "--data-dir", str(root)]
        + ["--output", str(out), "--workers", "1", "--eval-percent", "50", "--no-plots"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: cannot write {out / 'summary.json'}: Is a directory; the previous file, if any, is unchanged"
    )
    assert "FAILED: " in result.stdout  # the run's own failure is still summarised on the console
    assert (out / "summary.json").is_dir() and not list(out.glob(".summary.json.*"))
