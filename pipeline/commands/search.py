"""`simsiam-tfx search`: the nearest neighbours of a query image in an embedding index (cosine)."""

from __future__ import annotations

import argparse
import os
import sys

HELP = "find the images of an index most similar to a query image (cosine similarity of embeddings)"
DESCRIPTION = """\
Embeds --query with the model's `embed_images` signature and prints the -k rows of --index
with the highest cosine similarity. --index is the .npz that `simsiam-tfx embed` writes, or the
pipeline's embedding index (OUT/summary.json names it as `embedding_index`), which also holds
labels, splits and thumbnails. --model must be the model that built the index (same as for embed:
a SavedModel folder, http://HOST:8501/v1/models/NAME or grpc://HOST:8500/NAME).
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", required=True, metavar="FILE.npz", help="embedding index")
    p.add_argument("--model", required=True, metavar="DIR_OR_URL", help="SavedModel folder or TF Serving URL")
    p.add_argument("--query", required=True, metavar="IMAGE", help="a JPEG or PNG file")
    p.add_argument("-k", type=int, default=5, help="number of neighbours (default: %(default)s)")
    p.add_argument("--split", help="search only the rows of this split (e.g. train), for the pipeline's index")
    p.add_argument("--plot", metavar="OUT.png", help="also draw the query and its neighbours")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request to a server")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from serving import EmbeddingClient, ServingError, open_backend
    from serving.files import read_file
    from serving.images import check_image_bytes
    from serving.index import EmbeddingIndex, IndexFileError, nearest

    if args.k < 1:
        print("error: -k must be >= 1", file=sys.stderr)
        return 2
    try:
        index = EmbeddingIndex.load(args.index)
    except IndexFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.split:
        if index.splits is None:
            print(f"error: {args.index} has no splits; drop --split", file=sys.stderr)
            return 2
        index = index.select(index.splits == args.split)
        if not len(index):
            print(f"error: {args.index} has no row of split {args.split!r}", file=sys.stderr)
            return 2
    query, problem = read_file(args.query)
    if query is not None and (bad := check_image_bytes(query)):
        problem = bad.reason
    if problem:
        print(f"error: query {args.query}: {problem}", file=sys.stderr)
        return 2
    try:
        backend = open_backend(args.model, timeout=args.timeout)
        fingerprint = backend.fingerprint() if hasattr(backend, "fingerprint") else ""
        if fingerprint and index.model_fingerprint and fingerprint != index.model_fingerprint:
            print(f"warning: {args.index} was built with another model ({index.model or 'unknown'}) than "
                  f"{args.model}: similarities across models mean nothing", file=sys.stderr)
        result = EmbeddingClient(backend, batch_size=1).embed([query])
        backend.close()
    except ServingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if result.failed:
        print(f"error: query {args.query}: {result.failed[0][1]}", file=sys.stderr)
        return 1
    try:
        rows, sims = nearest(index.embeddings, result["embedding"], args.k)
    except IndexFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{len(rows[0])} nearest of {len(index)} to {args.query}:")
    print(f"{'rank':>4}  {'cosine':>7}  {'class':<12}  path")
    for rank, (row, sim) in enumerate(zip(rows[0], sims[0]), start=1):
        print(f"{rank:>4}  {sim:>7.4f}  {index.class_of(row) or '-':<12}  {index.paths[row]}")
    if args.plot:
        from serving.plot import plot_neighbours

        plot_neighbours(args.query, index, rows[0], sims[0], args.plot)
        print(f"wrote {args.plot}")
    return 0
