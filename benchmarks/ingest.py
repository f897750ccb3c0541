"""Ingestion speed as a user sees it: `simsiam-tfx ingest` on a folder, beside a plain Pillow decode of the same files.

    python -m benchmarks.ingest --data-dir ../shared/flowers/flower_photos [--workers 1 2]

For each `--workers` value, runs the command a user runs (`simsiam-tfx ingest --data-dir D --output
TMP --workers N`: ImageExampleGen -> StatisticsGen -> SchemaGen with LocalDagRunner, Beam's
FnApiRunner) in a fresh process and times it, start-up included; then decodes every file of the same
folder with Pillow in this process (`Image.open(...).load()`, one core), the floor any ingestion
pays. Prints both and their ratio, one JSON line per run, and writes them to
benchmarks/results/ingest-<workers>w.json (images, wall_s, pillow_s, ratio, peak memory of the
command's process tree summed over its Beam worker processes, machine, load before).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import psutil

from benchmarks.machine import cpu_model
from pipeline.commands.ingest import INGESTION_FILE

RESULTS = Path(__file__).resolve().parent / "results"


class PeakMemory:
    """Samples the memory of this process tree (Beam's workers are child processes): the summed RSS,
    which counts the shared pages of TensorFlow's libraries once per process, and the summed PSS, which
    splits shared pages between the processes that map them (the tree's real footprint)."""

    def __init__(self, interval_s: float = 0.2):
        self.interval_s, self.peak_rss, self.peak_pss = interval_s, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self) -> None:
        me = psutil.Process()
        rss = pss = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                info = proc.memory_full_info()
            except psutil.Error:
                continue  # exited between listing and reading
            rss, pss = rss + info.rss, pss + info.pss
        self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> PeakMemory:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def machine() -> str:
    return f"{os.cpu_count()}-core CPU ({cpu_model()}), {psutil.virtual_memory().total / 2**30:.0f} GiB RAM"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.ingest", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data-dir", required=True, help="a folder of class folders of images")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Beam worker processes (default: 1 2)")
    p.add_argument("--results-dir", default=str(RESULTS))
    return p


def pillow_decode_seconds(files: list[Path]) -> float:
    """Seconds to read and fully decode every file with Pillow, one after another (one core)."""
    from PIL import Image

    start = time.perf_counter()
    for path in files:
        with Image.open(path) as image:
            image.load()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    import subprocess
    import sys

    args = build_parser().parse_args(argv)
    files = sorted(p for p in Path(args.data_dir).rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    exe = Path(sys.executable).parent / "simsiam-tfx"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    for workers in args.workers:
        with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
            command = [
                str(exe),
                "ingest",
                "--data-dir",
                args.data_dir,
                "--output",
                f"{tmp}/out",
                "--workers",
                str(workers),
            ]
            load_before = os.getloadavg()[0]  # the machine may be shared: other work slows the run down
            with PeakMemory() as memory:
                start = time.perf_counter()
                done = subprocess.run(command, capture_output=True, text=True, env=env)
                wall_s = time.perf_counter() - start
            if done.returncode != 0:
                print(done.stdout[-2000:], done.stderr[-2000:])
                return done.returncode
            report = json.loads(Path(tmp, "out", INGESTION_FILE).read_text())
        pillow_s = pillow_decode_seconds(files)
        images = sum(n for split in report["counts"].values() for n in split.values())
        result = {
            "benchmark": "ingest",
            "command": " ".join(["simsiam-tfx", *command[1:5], "OUT", *command[6:]]),
            "images": images,
            "rejected": len(report["rejected"]),
            "wall_s": round(wall_s, 2),
            "images_per_s": round(images / wall_s, 1),
            "pillow_s": round(pillow_s, 2),
            "ratio": round(wall_s / pillow_s, 2),
            "peak_rss_mb": round(memory.peak_rss / 2**20),
            "peak_pss_mb": round(memory.peak_pss / 2**20),
            "machine": machine(),
            "load_avg_1m_before": round(load_before, 2),
        }
        line = json.dumps(result)
        print(
            f"{workers} worker(s): simsiam-tfx ingest {wall_s:.1f} s, Pillow decode {pillow_s:.1f} s, "
            f"ratio {wall_s / pillow_s:.1f}x ({images} images)"
        )
        print(line)
        Path(args.results_dir).mkdir(parents=True, exist_ok=True)
        (Path(args.results_dir) / f"ingest-{workers}w.json").write_text(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
