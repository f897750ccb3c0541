"""The checks of --output and the photo folders (pipeline/preflight.py): one line, before TensorFlow loads.

Each command runs in a subprocess whose `tensorflow` is a stub that raises on import: a check that
answers with its one line on stderr has answered before TensorFlow (and TFX, which imports it) loaded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes.images import make_image_folder

REPO = Path(__file__).resolve().parents[2]
STUB_MESSAGE = "tensorflow stub: the command imported TensorFlow"


def cli_without_tensorflow(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """`simsiam-tfx ARGS` with a `tensorflow` package that raises on import ahead on the path."""
    stub = tmp_path / "stub" / "tensorflow"
    stub.mkdir(parents=True, exist_ok=True)
    (stub / "__init__.py").write_text(
        "import os\nimport time\n\nif os.environ.get('TENSORFLOW_STUB_WAITS'):\n"
        f"    time.sleep(600)\nraise ImportError({STUB_MESSAGE!r})\n"
    )
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=stub_env(stub.parent),
        timeout=120,
    )


def stub_env(stub: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(stub), str(REPO)]), **extra}


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert STUB_MESSAGE not in result.stderr, result.stderr[-2000:]
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    make_image_folder(tmp_path / "photos", {"a": 20, "b": 20})  # every class has eval images
    return tmp_path / "photos"


@pytest.mark.parametrize("command", ["run", "ingest"])
def test_an_output_under_a_regular_file_is_refused_with_one_line(tmp_path: Path, photos: Path, command: str) -> None:
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    out = tmp_path / "notes.txt" / "run"
    line = one_error_line(cli_without_tensorflow(tmp_path, command, "--data-dir", str(photos), "--output", str(out)))
    assert f"{tmp_path / 'notes.txt'} is a file, not a folder" in line
    line = one_error_line(
        cli_without_tensorflow(tmp_path, command, "--data-dir", str(photos), "--output", str(tmp_path / "notes.txt"))
    )
    assert "is a file, not a folder" in line


def test_embed_output_under_a_file_or_on_a_folder_is_refused_before_any_work(tmp_path: Path, photos: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    for output, expected in (
        (tmp_path / "notes.txt" / "idx.npz", "is a file, not a folder"),
        (photos, "is a folder; give a file name"),
    ):
        line = one_error_line(
            cli_without_tensorflow(
                tmp_path, "embed", "--model", str(tmp_path / "model"), "--output", str(output), str(photos)
            )
        )
        assert expected in line and "--output" in line
    (tmp_path / "idx.npz").write_bytes(b"the previous index")  # an existing file is replaced: no error
    result = cli_without_tensorflow(
        tmp_path, "embed", "--model", str(tmp_path / "model"), "--output", str(tmp_path / "idx.npz"), str(photos)
    )
    assert "--output" not in result.stderr and "neither a SavedModel folder" in result.stderr  # past the checks


@pytest.mark.parametrize("command", ["run", "ingest"])
@pytest.mark.parametrize("flag", ["--data-dir", "--unlabeled-dir"])
def test_an_output_inside_a_photo_folder_is_refused(tmp_path: Path, photos: Path, command: str, flag: str) -> None:
    for out in (photos / "out", photos / "a" / "deeper" / "run", photos):
        line = one_error_line(cli_without_tensorflow(tmp_path, command, flag, str(photos), "--output", str(out)))
        assert f"--output {out} is inside {flag} {photos}" in line
        assert not (photos / "out").exists()  # nothing was created inside the photos


@pytest.mark.parametrize("command", ["run", "ingest"])
def test_a_photo_folder_inside_the_output_is_refused(tmp_path: Path, photos: Path, command: str) -> None:
    line = one_error_line(
        cli_without_tensorflow(tmp_path, command, "--data-dir", str(photos), "--output", str(tmp_path))
    )
    assert f"--data-dir {photos} is inside --output {tmp_path}" in line


@pytest.mark.parametrize("command", ["run", "ingest"])
def test_an_output_that_cannot_be_made_is_refused(tmp_path: Path, photos: Path, command: str) -> None:
    out = "/proc/simsiam-tfx-cannot-make-this"  # the kernel's process table takes no folder
    line = one_error_line(cli_without_tensorflow(tmp_path, command, "--data-dir", str(photos), "--output", out))
    assert f"--output {out} is not a folder this user can write" in line


@pytest.mark.parametrize(
    "layout, expected",
    [
        ({"roses": 4}, "has 1 class folder(s) ('roses')"),
        ({}, "holds no class folders"),
        ({"roses": 4, "tulips": 0}, "class folder(s) 'tulips'"),
    ],
    ids=["one-class", "empty", "empty-class"],
)
def test_run_reports_an_unusable_labelled_folder_before_tensorflow(tmp_path: Path, layout: dict, expected: str) -> None:
    data = tmp_path / "photos"
    data.mkdir()
    for name, n in layout.items():
        (data / name).mkdir()
        if n:
            make_image_folder(data, {name: n})
    result = cli_without_tensorflow(
        tmp_path, "run", "--profile", "smoke", "--data-dir", str(data), "--output", str(tmp_path / "out")
    )
    assert expected in one_error_line(result)
    assert result.returncode == 2  # bad input (pipeline/commands/run.py's exit statuses)


def test_a_good_output_passes_the_checks_and_the_command_goes_on_to_tensorflow(tmp_path: Path, photos: Path) -> None:
    result = cli_without_tensorflow(tmp_path, "ingest", "--data-dir", str(photos), "--output", str(tmp_path / "o"))
    assert STUB_MESSAGE in result.stderr  # past every check: the stub stopped it
    assert (tmp_path / "o").is_dir()
    # `run` without --profile (as `make run` calls it) loads TensorFlow to look for a GPU: it has said
    # what it runs on first, instead of 30-40 s of silence.
    result = cli_without_tensorflow(tmp_path, "run", "--data-dir", str(photos), "--output", str(tmp_path / "r"))
    assert STUB_MESSAGE in result.stderr and result.stdout.startswith("simsiam-tfx run: data folder ")


def test_one_command_per_output_folder_and_a_killed_holder_blocks_nothing(tmp_path: Path, photos: Path) -> None:
    """Issue 28 item 5: a second `ingest` or `run` on a busy --output failed after ~40 s in ML Metadata."""
    out = tmp_path / "out"
    args = ["--data-dir", str(photos), "--output", str(out)]
    cli_without_tensorflow(tmp_path / "first", "--help")  # writes the stub
    # The first command holds the folder: it passed its checks and waits in the stub's `import tensorflow`.
    first = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "ingest", *args],
        cwd=REPO,
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=stub_env(tmp_path / "first" / "stub", TENSORFLOW_STUB_WAITS="1"),
    )
    try:
        lock = out / "simsiam-tfx.lock"
        while f'"pid": {first.pid}' not in (lock.read_text() if lock.exists() else ""):
            assert first.poll() is None, first.stderr.read()
            time.sleep(0.1)
        for command in (["ingest"], ["run", "--profile", "smoke"]):
            second = cli_without_tensorflow(tmp_path, *command, *args)
            line = one_error_line(second)
            assert line.startswith(f"error: {out} is in use by `simsiam-tfx ingest` (pid {first.pid}) since 20")
            assert line.endswith("one command per output folder; wait for it to end or choose another --output")
            assert second.returncode == 2
    finally:
        first.send_signal(signal.SIGKILL)  # no clean-up runs: the kernel releases the lock
        first.wait()
    third = cli_without_tensorflow(tmp_path, "ingest", *args)
    assert STUB_MESSAGE in third.stderr and "in use" not in third.stderr  # past the lock, stopped by the stub


def test_the_lock_is_released_when_its_holder_lets_go(tmp_path: Path) -> None:
    from pipeline.preflight import PreflightError, claim_run_folder

    held = claim_run_folder(str(tmp_path), "simsiam-tfx run")
    with pytest.raises(PreflightError, match=f"in use by `simsiam-tfx run` \\(pid {os.getpid()}\\)"):
        claim_run_folder(str(tmp_path), "simsiam-tfx ingest")
    held.release()
    claim_run_folder(str(tmp_path), "simsiam-tfx ingest").release()
