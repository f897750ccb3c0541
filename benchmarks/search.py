"""Nearest-neighbour search at scale: the EmbeddingIndexer's IVF index against numpy brute force.

    python -m benchmarks.search --vectors 1000000 --dim 512

Two seeded synthetic tables of unit vectors (512 = the ResNet-18 embedding size):
- `clustered`, which looks like embeddings: `--clusters` random unit centres, each point a centre plus
  Gaussian noise of norm about `--spread`, renormalised; the queries come from the same generator
  (fresh points, not rows of the index), as new photos of known kinds would;
- `uniform`: i.i.d. uniform directions, the worst case for a cell-based index (no structure to
  exploit), reported but not held to the target.
For each, side by side in one process: build time, queries/s at batch 1 (`--batch1-queries`
single-query calls for the IVF index, the first `--brute-batch1-queries` of them for brute force,
which at 1M rows takes about a third of a second per call; `batch1_calls` in each row) and at
batch 64 (all `--queries`; brute force's batch-64 pass is also the exact answer that recall@10 is
scored against), and the peak
resident memory each method adds (VmHWM from /proc/self/status, reset per phase through
/proc/self/clear_refs). Brute force is `serving.ann.exact_top_k` (a matrix product, then
`np.argpartition` for the top 10: O(N) per query, the fair baseline); the index is
`serving.ann.build_index` with the IVF path forced (`exact_max_rows=0`), nprobe tuned on the index's
own rows (when it would have to scan more than a quarter of the cells, `build_index` falls back to
the exact IndexFlatIP, and the row says so; that row is then timed at batch 1 on the brute-force
count of calls, since it scans every row as brute force does). Target on the clustered table:
recall@10 >= 0.95 and batch-1 queries/s >= 20x brute force.
Progress lines for each long phase (k-means, adding the rows, each nprobe tried, brute force) go to
stderr with the seconds since the start; at 1M x 512 on 2 cores the run takes several minutes.
Prints a table and one JSON line, and writes benchmarks/results/search-<N>x<D>.json
({"command", "device", "results"}).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.machine import cpu_model

RESULTS_DIR = Path(__file__).resolve().parent / "results"
K = 10
TARGET_RECALL, TARGET_SPEEDUP = 0.95, 20.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, required=True, help="rows in the index")
    parser.add_argument("--dim", type=int, default=512, help="embedding width (default: %(default)s, ResNet-18)")
    parser.add_argument("--queries", type=int, default=1000, help="queries for recall and batch 64")
    parser.add_argument("--batch1-queries", type=int, default=200, help="single-query calls timed at batch 1")
    parser.add_argument(
        "--brute-batch1-queries", type=int, default=50, help="of those, the ones brute force is timed on"
    )
    parser.add_argument("--clusters", type=int, default=1000, help="centres of the clustered table")
    parser.add_argument("--spread", type=float, default=1.0, help="noise norm around a centre (1: cosine ~0.7)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    counts = (args.queries, args.batch1_queries, args.brute_batch1_queries, args.clusters)
    if args.vectors < 2 * K or args.dim < 2 or min(counts) < 1:
        parser.error(
            f"need --vectors >= {2 * K}, --dim >= 2, and --queries, --batch1-queries, "
            "--brute-batch1-queries, --clusters >= 1"
        )
    return args


def clustered_table(n: int, queries: int, dim: int, clusters: int, spread: float, seed: int):
    """(index rows float32 `[n, dim]`, queries `[queries, dim]`), unit rows drawn from one mixture."""
    from serving.ann import unit_rows

    rng = np.random.default_rng(seed)
    centres = unit_rows(rng.standard_normal((clusters, dim), dtype=np.float32))
    out = np.empty((n + queries, dim), np.float32)
    for start in range(0, n + queries, 65536):  # in chunks: the noise of 1M x 512 would double memory
        rows = min(65536, n + queries - start)
        noise = rng.standard_normal((rows, dim), dtype=np.float32) * (spread / np.sqrt(dim))
        out[start : start + rows] = unit_rows(centres[rng.integers(0, clusters, rows)] + noise)
    return out[:n], out[n:]


def uniform_table(n: int, queries: int, dim: int, seed: int):
    """(index rows, queries): i.i.d. uniform directions on the unit sphere (normalised Gaussians)."""
    from serving.ann import unit_rows

    rng = np.random.default_rng(seed)
    out = np.empty((n + queries, dim), np.float32)
    for start in range(0, n + queries, 65536):
        rows = min(65536, n + queries - start)
        out[start : start + rows] = unit_rows(rng.standard_normal((rows, dim), dtype=np.float32))
    return out[:n], out[n:]


def _memory_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class PeakMemory:
    """The peak resident memory a block adds, MB: VmHWM after it minus VmRSS before it (Linux; the
    peak is reset first by writing 5 to /proc/self/clear_refs, see proc(5))."""

    def __enter__(self):
        Path("/proc/self/clear_refs").write_text("5")
        self.before = _memory_kb("VmRSS")
        return self

    def __exit__(self, *exc):
        self.added_mb = round(max(0, _memory_kb("VmHWM") - self.before) / 1024, 1)


_START = time.perf_counter()


def log(line: str) -> None:
    """A progress line on stderr (stdout keeps the table and the JSON), with the seconds since the start."""
    print(f"[search {time.perf_counter() - _START:7.1f} s] {line}", file=sys.stderr, flush=True)


def _queries_per_s(search, queries: np.ndarray, batch: int, limit: int | None = None) -> float:
    q = queries[:limit] if limit else queries
    start = time.perf_counter()
    for i in range(0, len(q), batch):
        search(q[i : i + batch])
    return round(len(q) / (time.perf_counter() - start), 1)


def compare(name: str, vectors: np.ndarray, queries: np.ndarray, args: argparse.Namespace) -> list[dict]:
    """Two result rows (brute force, IVF) for one table."""
    from serving.ann import build_index, exact_top_k, recall_at_k

    rows = []
    with PeakMemory() as memory:
        log(f"{name}: numpy brute force, {args.brute_batch1_queries} queries at batch 1")
        qps_batch1 = _queries_per_s(lambda q: exact_top_k(vectors, q, K), queries, 1, args.brute_batch1_queries)
        log(f"{name}: numpy brute force, {len(queries)} queries at batch 64 (the exact answers)")
        start = time.perf_counter()
        _, truth = exact_top_k(vectors, queries, K, chunk=64)  # timed: batch 64, and the truth for recall
        brute = {
            "table": name,
            "method": "numpy brute force",
            "build_s": 0.0,
            "batch1_calls": min(args.brute_batch1_queries, len(queries)),
            "qps_batch1": qps_batch1,
            "qps_batch64": round(len(queries) / (time.perf_counter() - start), 1),
        }
    rows.append({**brute, "recall_at_10": 1.0, "peak_added_mb": memory.added_mb})
    with PeakMemory() as memory:
        log(f"{name}: building the index over {len(vectors)} rows")
        start = time.perf_counter()
        index = build_index(vectors, exact_max_rows=0, seed=args.seed, log=lambda line: log(f"{name}: {line}"))
        build_s = round(time.perf_counter() - start, 2)
        # the exact fallback scans every row per query, as brute force does: timed on as few calls
        calls = min(args.batch1_queries if index.meta.kind == "ivf" else args.brute_batch1_queries, len(queries))
        log(f"{name}: built in {build_s} s; timing {calls} queries at batch 1 and {len(queries)} at 64")
        qps_batch1 = _queries_per_s(lambda q: index.search(q, K), queries, 1, calls)
        start = time.perf_counter()
        found = np.concatenate([index.search(queries[i : i + 64], K)[0] for i in range(0, len(queries), 64)])
        qps_batch64 = round(len(queries) / (time.perf_counter() - start), 1)  # the answers scored below
        method = (
            f"faiss IVF-Flat nlist {index.meta.nlist} nprobe {index.meta.nprobe}"
            if index.meta.kind == "ivf"
            else "faiss exact (IVF needed > 1/4 of cells)"
        )
        ivf = {
            "table": name,
            "method": method,
            "build_s": build_s,
            "batch1_calls": calls,
            "qps_batch1": qps_batch1,
            "qps_batch64": qps_batch64,
            "recall_at_10": round(recall_at_k(vectors, queries, found, truth), 4),
        }
    rows.append(
        {
            **ivf,
            "peak_added_mb": memory.added_mb,
            "speedup_batch1": round(ivf["qps_batch1"] / brute["qps_batch1"], 1),
            "speedup_batch64": round(ivf["qps_batch64"] / brute["qps_batch64"], 1),
        }
    )
    return rows


def table(results: list[dict]) -> str:
    header = f"{'table':<10} {'method':<40} {'build s':>8} {'q/s b1':>9} {'q/s b64':>9} {'recall@10':>9} {'+MB':>7}"
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r['table']:<10} {r['method']:<40} {r['build_s']:>8} {r['qps_batch1']:>9} "
            f"{r['qps_batch64']:>9} {r['recall_at_10']:>9} {r['peak_added_mb']:>7}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace, command: str) -> dict:
    import faiss

    load_before = os.getloadavg()[0]
    results = []
    log(f"clustered: drawing {args.vectors} x {args.dim} rows and {args.queries} queries")
    results += compare(
        "clustered", *clustered_table(args.vectors, args.queries, args.dim, args.clusters, args.spread, args.seed), args
    )
    log(f"uniform: drawing {args.vectors} x {args.dim} rows and {args.queries} queries")
    results += compare("uniform", *uniform_table(args.vectors, args.queries, args.dim, args.seed + 1), args)
    log("done")
    ivf = results[1]
    return {
        "benchmark": "search",
        "command": command,
        "device": f"cpu: {cpu_model()} ({os.cpu_count()} cores), faiss {faiss.__version__} with "
        f"{faiss.omp_get_max_threads()} threads, numpy {np.__version__}",
        "vectors": args.vectors,
        "dim": args.dim,
        "queries": args.queries,
        "batch1_queries": args.batch1_queries,
        "brute_batch1_queries": min(args.brute_batch1_queries, args.batch1_queries, args.queries),
        "clusters": args.clusters,
        "spread": args.spread,
        "seed": args.seed,
        # other work on the machine slows both methods; the 1-minute load average before and after says how much
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "target": {
            "recall_at_10": TARGET_RECALL,
            "speedup_batch1": TARGET_SPEEDUP,
            "met_on_clustered": ivf["recall_at_10"] >= TARGET_RECALL and ivf["speedup_batch1"] >= TARGET_SPEEDUP,
        },
        "results": results,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python -m benchmarks.search " + shlex.join(sys.argv[1:] if argv is None else argv)
    record = run(args, command)
    print(table(record["results"]))
    print(json.dumps(record), flush=True)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / f"search-{args.vectors}x{args.dim}.json").write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
