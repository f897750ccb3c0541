"""Files the CLI leaves for the user are written whole or not at all (serving/atomic.py, issue 28 item 1).

The failure is real: the writer runs in a subprocess under a file size limit (RLIMIT_FSIZE, with
SIGXFSZ ignored so the write fails with EFBIG as it fails with ENOSPC on a full disk).
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from serving.index import EmbeddingIndex

REPO = Path(__file__).resolve().parents[2]
LIMIT_BYTES = 4096

# Each writer: (file name, what it imports and warms up before the limit, a write of more than LIMIT_BYTES
# onto `path`).
WRITERS = {
    "embedding index (embed --output, the pipeline's index)": (
        "idx.npz",
        "from serving.index import EmbeddingIndex",
        """\
rows = np.random.default_rng(0).normal(size=(500, 64)).astype(np.float32)
EmbeddingIndex(paths=np.array([f"photo_{i}.jpg" for i in range(500)]), embeddings=rows).save(path)""",
    ),
    "ingestion.json": (
        "ingestion.json",
        "from components.ingest.ingestion_record import write_report",
        """\
write_report(path, {"rejected": [{"path": f"photo_{i}.jpg", "reason": "x" * 50} for i in range(500)]})""",
    ),
    "training_curves.png and embedding_map.png": (
        "training_curves.png",
        """\
import os, tempfile
from components.report.figures import plot_training_curves
plot_training_curves({"loss": [1.0]}, os.path.join(tempfile.mkdtemp(), "warm.png"))  # matplotlib's font cache""",
        """\
plot_training_curves({"loss": [1.0, 0.8, 0.5], "knn_accuracy": [0.3, None, 0.5]}, path, title="curves")""",
    ),
    "summary.json and report.html": (
        "report.html",
        "from serving.atomic import write_text_atomic",
        """\
write_text_atomic(path, "<html>" + "x" * 100_000)""",
    ),
}


def limit_file_size(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # inherited through exec: write() fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def write_under_a_size_limit(setup: str, write: str, path: Path) -> subprocess.CompletedProcess:
    """Runs `setup`, then `write` under the file size limit (so only the write can meet it)."""
    code = "\n".join(
        [
            "import resource, signal, sys",
            "import numpy as np",
            "path = sys.argv[1]",
            setup,
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)",
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({LIMIT_BYTES}, {LIMIT_BYTES}))",
            "try:",
            *(f"    {line}" for line in write.splitlines()),
            "except OSError as err:",
            "    print('OSError', err.errno)",
        ]
    )
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, cwd=REPO, env=env, timeout=120
    )


@pytest.mark.parametrize("name, setup, write", WRITERS.values(), ids=WRITERS.keys())
def test_a_write_that_fails_keeps_the_previous_file_whole(tmp_path: Path, name: str, setup: str, write: str) -> None:
    path = tmp_path / name
    EmbeddingIndex(paths=np.array(["a.jpg", "b.jpg"]), embeddings=np.eye(2, dtype=np.float32)).save(str(path))
    before = path.read_bytes()
    assert len(before) < LIMIT_BYTES

    result = write_under_a_size_limit(setup, write, path)

    assert result.stdout.strip() == f"OSError {errno.EFBIG}", result.stderr[-2000:]
    assert path.read_bytes() == before  # written in place, it was cut at the limit
    assert os.listdir(tmp_path) == [name]  # and no temporary file is left behind
    assert EmbeddingIndex.load(str(path)).paths.tolist() == ["a.jpg", "b.jpg"]


def test_a_successful_write_replaces_the_file_and_keeps_its_permissions(tmp_path: Path) -> None:
    from serving.atomic import write_text_atomic

    path = tmp_path / "summary.json"
    path.write_text("old")
    path.chmod(0o640)
    write_text_atomic(path, "new")
    assert path.read_text() == "new" and (path.stat().st_mode & 0o777) == 0o640
    write_text_atomic(tmp_path / "fresh.json", "x")  # a new file: the umask's permissions, as open() gives
    umask = os.umask(0)
    os.umask(umask)
    assert ((tmp_path / "fresh.json").stat().st_mode & 0o777) == 0o666 & ~umask


def test_embed_onto_a_full_disk_keeps_the_previous_index_and_says_so_in_one_line(tmp_path: Path) -> None:
    """The issue's case: `embed --output idx.npz` failing at the write, after all the embedding work."""
    from pipeline.cli import main
    from tests.fakes.images import make_image_folder
    from tests.fakes.synthetic_model import build_synthetic_serving_model

    model = build_synthetic_serving_model(str(tmp_path / "model" / "1"))
    make_image_folder(tmp_path / "photos", {"a": 2, "b": 6})
    out = tmp_path / "index" / "idx.npz"
    assert main(["embed", "--model", model, "--output", str(out), str(tmp_path / "photos" / "a")]) == 0
    before = out.read_bytes()

    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "embed",
            "--model",
            model,
            "--output",
            str(out),
            str(tmp_path / "photos"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
        preexec_fn=limit_file_size(len(before) + 1),
    )  # the index of 8 images needs more

    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"error: cannot write {out}: File too large; the previous file, if any, is unchanged"
    assert out.read_bytes() == before and os.listdir(out.parent) == ["idx.npz"]
    assert len(EmbeddingIndex.load(str(out))) == 2  # `search` still reads the previous index
