"""Ingestion throughput: the ImageExampleGen (optionally + StatisticsGen) on a whole folder with LocalDagRunner.

    python -m benchmarks.ingest --data-dir ../shared/flowers/flower_photos [--workers 2] [--with-statistics]

Prints one JSON line (images, wall_s, images_per_s, peak_rss_mb summed over this process and its Beam
worker processes, machine) and writes it to benchmarks/results/ingest-<workers>w[-stats].json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import psutil

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
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()}-core CPU ({model}), {psutil.virtual_memory().total / 2**30:.0f} GiB RAM"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.ingest", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data-dir", required=True, help="a folder of class folders of images")
    p.add_argument("--workers", type=int, default=2, help="Beam DirectRunner worker processes (default: 2)")
    p.add_argument("--with-statistics", action="store_true", help="also run StatisticsGen on the examples")
    p.add_argument("--work-dir", help="pipeline root and metadata (default: a temporary folder, deleted)")
    p.add_argument("--results-dir", default=str(RESULTS))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        return run(args, Path(args.work_dir or tmp))


def run(args: argparse.Namespace, work: Path) -> int:
    start_imports = time.perf_counter()
    from absl import logging as absl_logging
    from tfx import v1 as tfx

    from components.ingest.component import EXAMPLE_GEN_ID, image_example_gen
    from components.ingest.report import read_report
    from pipeline.local_runner import beam_pipeline_args, metadata_connection, run_local
    from pipeline.mlmd import latest_run, output_uri

    absl_logging.set_verbosity(absl_logging.WARNING)
    import_s = time.perf_counter() - start_imports

    example_gen = image_example_gen(args.data_dir)
    components = [example_gen]
    if args.with_statistics:
        components.append(tfx.components.StatisticsGen(examples=example_gen.outputs["examples"]))
    metadata_path = str(work / "metadata.sqlite")
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="ingest-benchmark",
        pipeline_root=str(work / "pipeline_root"),
        components=components,
        enable_cache=False,
        metadata_connection_config=metadata_connection(metadata_path),
        beam_pipeline_args=beam_pipeline_args(args.workers),
    )
    load_before = os.getloadavg()[0]  # the machine is shared: other work slows the run down
    with PeakMemory() as memory:
        start = time.perf_counter()
        run_local(pipeline)
        wall_s = time.perf_counter() - start
    executions = latest_run(metadata_path)
    report = read_report(output_uri(executions, EXAMPLE_GEN_ID, "examples"))
    images = sum(n for split in report["counts"].values() for n in split.values())
    result = {
        "benchmark": "ingest",
        "data_dir": os.path.abspath(args.data_dir),
        "images": images,
        "rejected": len(report["rejected"]),
        "counts": {split: sum(c.values()) for split, c in report["counts"].items()},
        "wall_s": round(wall_s, 2),
        "images_per_s": round(images / wall_s, 1),
        "seconds_per_component": {e.node_id: round(e.seconds, 2) for e in executions},
        "import_s": round(import_s, 2),
        "peak_rss_mb": round(memory.peak_rss / 2**20),
        "peak_pss_mb": round(memory.peak_pss / 2**20),
        "beam": f"DirectRunner, {beam_pipeline_args(args.workers)}",
        "machine": machine(),
        "load_avg_1m_before": round(load_before, 2),
    }
    line = json.dumps(result)
    print(line)
    Path(args.results_dir).mkdir(parents=True, exist_ok=True)
    name = f"ingest-{args.workers}w{'-stats' if args.with_statistics else ''}.json"
    (Path(args.results_dir) / name).write_text(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
