"""Serving benchmark: embedding latency and throughput of the serving SavedModel, and search precision@k.

    python -m benchmarks.serving --model runs/cpu/serving
    python -m benchmarks.serving --model runs/cpu/serving --data-dir ../shared/flowers/flower_photos --precision-at 5
    python -m benchmarks.serving --model runs/cpu/serving --index runs/cpu/.../index.npz \\
        --data-dir ../shared/flowers/flower_photos --precision-at 5

Latency: `embed_images` on one image per request, called by name on the loaded SavedModel (the
back end `simsiam-tfx embed` uses for a folder), p50/p95 over --repeats requests after a warm-up.
Throughput: images/s over --batches requests of --batch-size images. Images are real files from
--data-dir when given, else a synthetic 320x240 JPEG. peak_rss_mb is this serving process's peak.

Precision@k: the index's train rows are searched (cosine) with every eval-split image as the query;
the share of the k neighbours with the query's class, averaged. Without --index, the whole --data-dir
is embedded and split by the ExampleGen's hash rule (components.ingest.splits.split_of); with --index (the
pipeline's), eval queries are embedded again from their files when --data-dir is given.
`chance` is the precision a random ranking would get (sum over classes of eval share x train share).
With --precision-at, the same train/eval embeddings also give the weighted kNN accuracy (k=20, the
SimSiam Trainer's monitor), the linear-probe accuracy (the probe Trainer's fit) and the eval embeddings'
effective rank (RankMe, the label-free gate's measure): how a model trained without labels is judged
with the labels it never saw (docs/data.md "Your own images").

stdout: one JSON line; also written to benchmarks/results/serving[-TAG].json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.memory import own_peak_rss_mb

DEFAULT_OUTPUT_DIR = Path(__file__).resolve().parent / "results"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.serving", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="SavedModel folder, or a folder of numbered versions")
    p.add_argument("--data-dir", type=Path, help="image folder (class sub-folders) for real images and queries")
    p.add_argument("--index", help="an embedding index .npz with splits and labels (the pipeline's)")
    p.add_argument("--precision-at", type=int, default=0, metavar="K", help="measure precision@K (0: skip)")
    p.add_argument("--repeats", type=int, default=100, help="single-image requests for latency")
    p.add_argument("--batches", type=int, default=10, help="batched requests for throughput")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--eval-percent", type=int, default=15)
    p.add_argument("--tag", default="", help="suffix of the results file name")
    p.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR)
    return p


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def machine() -> str:
    import tensorflow as tf

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpus = tf.config.list_physical_devices("GPU")
    return f"{'gpu' if gpus else 'cpu'} ({cores} cores, {platform.machine()}), TensorFlow {tf.__version__}"


def sample_images(data_dir: Path | None, n: int) -> list[bytes]:
    if data_dir is None:
        from components.export.warmup import synthetic_jpeg

        return [synthetic_jpeg(120)]  # 360x240
    files = sorted(data_dir.glob("*/*.jp*g"))
    if not files:
        raise SystemExit(f"error: no JPEG in {data_dir}/<class>/")
    step = max(len(files) // n, 1)
    return [f.read_bytes() for f in files[::step][:n]]


def measure_speed(backend, images: list[bytes], repeats: int, batches: int, batch_size: int) -> dict:
    def call(values: list[bytes]) -> None:
        backend.predict("embed_images", {"images": np.array(values, dtype=object)}, ["embedding"])

    for image in images[:5]:
        call([image])  # warm-up (what TF Serving's warm-up file does for a server)
    latencies = []
    for i in range(repeats):
        start = time.perf_counter()
        call([images[i % len(images)]])
        latencies.append((time.perf_counter() - start) * 1000)
    batch = [images[i % len(images)] for i in range(batch_size)]
    call(batch)
    start = time.perf_counter()
    for _ in range(batches):
        call(batch)
    elapsed = time.perf_counter() - start
    p50, p95 = np.percentile(latencies, [50, 95])
    return {
        "p50_ms": round(float(p50), 2),
        "p95_ms": round(float(p95), 2),
        "images_per_s": round(batches * batch_size / elapsed, 1),
        "batch_size": batch_size,
        "latency_requests": repeats,
        "image_source": "data-dir" if len(images) > 1 else "synthetic 360x240 JPEG",
    }


def _embed_files(client, root: Path, image_ids: list[str]) -> tuple[list[int], np.ndarray]:
    kept, chunks = [], []
    for start in range(0, len(image_ids), 256):
        ids = image_ids[start : start + 256]
        result = client.embed([(root / i).read_bytes() for i in ids])
        kept.extend(start + i for i in result.indices)
        if result.indices:
            chunks.append(result["embedding"])
        for i, reason in result.failed:
            _progress(f"  skipped {ids[i]}: {reason}")
        _progress(f"  embedded {start + len(ids)} of {len(image_ids)}")
    return kept, np.concatenate(chunks)


def measure_precision(backend, args: argparse.Namespace) -> dict:
    from components.ingest.files import list_image_folder
    from components.ingest.splits import split_of
    from serving import EmbeddingClient
    from serving.index import EmbeddingIndex, nearest, precision_at_k

    client = EmbeddingClient(backend, batch_size=args.batch_size)
    if args.index:
        index = EmbeddingIndex.load(args.index)
        if index.splits is None or index.labels is None:
            raise SystemExit(f"error: {args.index} has no splits/labels: use the pipeline's index, or --data-dir")
        train, evals = index.select(index.splits == "train"), index.select(index.splits == "eval")
        query_labels, queries, source = evals.labels, evals.embeddings, "index"
        if args.data_dir:
            kept, queries = _embed_files(client, args.data_dir, evals.paths.tolist())
            query_labels, source = evals.labels[kept], "files"
        train_labels, train_embeddings = train.labels, train.embeddings
    else:
        if not args.data_dir:
            raise SystemExit("error: --precision-at needs --index or --data-dir")
        listing = list_image_folder(str(args.data_dir))
        ids = [image_id for image_id, _ in listing.files]
        labels = np.array([listing.labels[c] for _, c in listing.files])
        kept, embeddings = _embed_files(client, args.data_dir, ids)
        labels = labels[kept]
        splits = np.array([split_of(ids[i], args.eval_percent) for i in kept])
        train_embeddings, train_labels = embeddings[splits == "train"], labels[splits == "train"]
        queries, query_labels, source = embeddings[splits == "eval"], labels[splits == "eval"], "files"
    rows, _ = nearest(train_embeddings, queries, args.precision_at)
    classes = np.union1d(train_labels, query_labels)
    chance = sum(np.mean(query_labels == c) * np.mean(train_labels == c) for c in classes)
    per_class = {
        int(c): round(precision_at_k(train_labels[rows[query_labels == c]], query_labels[query_labels == c]), 4)
        for c in np.unique(query_labels)
    }
    from models.evaluation import effective_rank, frozen_feature_scores

    scores = frozen_feature_scores(train_embeddings, train_labels, queries, query_labels)
    return {
        "knn_accuracy": round(float(scores["knn"]), 4),
        "linear_probe_accuracy": round(float(scores["linear_probe"]), 4),
        "eval_effective_rank": round(float(effective_rank(queries)), 2),
        f"precision_at_{args.precision_at}": round(precision_at_k(train_labels[rows], query_labels), 4),
        "chance": round(float(chance), 4),
        "per_class": per_class,
        "train_rows": int(len(train_labels)),
        "eval_queries": int(len(query_labels)),
        "queries_from": source,
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from serving.backends import LocalBackend, resolve_model_dir

    command = "python -m benchmarks.serving " + shlex.join(sys.argv[1:] if argv is None else argv)
    model_dir = resolve_model_dir(args.model)
    start = time.perf_counter()
    backend = LocalBackend(model_dir)
    result = {"model": model_dir, "load_s": round(time.perf_counter() - start, 2)}
    _progress(f"loaded {model_dir} in {result['load_s']}s; timing embed_images")
    result.update(measure_speed(backend, sample_images(args.data_dir, 64), args.repeats, args.batches, args.batch_size))
    if args.precision_at:
        result.update(measure_precision(backend, args))
    result["peak_rss_mb"] = round(own_peak_rss_mb(), 1)
    result["machine"] = machine()
    result["command"] = command
    line = json.dumps(result)
    print(line)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    name = f"serving-{args.tag}.json" if args.tag else "serving.json"
    (args.output_dir / name).write_text(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
