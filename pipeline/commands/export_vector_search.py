"""`simsiam-tfx export-vector-search`: an embedding index as Vertex AI Vector Search input files."""

from __future__ import annotations

import argparse
import os
import sys

HELP = "write an embedding index as the JSON Lines files Vertex AI Vector Search builds an index from"
DESCRIPTION = """\
Writes every row of --index (the pipeline's index.npz, or one from `simsiam-tfx embed`) into --output
(a local folder or gs://BUCKET/PATH, empty) as embeddings-XXXXX.json: one line per image, with its id,
its L2-normalised embedding and restricts for its class and split (serving/vector_export.py). Create the
Vector Search index with contentsDeltaUri = --output, dimensions = the printed width,
distanceMeasureType DOT_PRODUCT_DISTANCE and featureNormType UNIT_L2_NORM (docs/search.md).
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", required=True, metavar="FILE.npz", help="embedding index")
    p.add_argument("--output", required=True, metavar="DIR", help="empty folder, local or gs://")
    p.add_argument("--rows-per-file", type=int, default=10_000, help="records per file (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from serving.index import EmbeddingIndex, IndexFileError
    from serving.vector_export import MAX_FILES, export_jsonl

    if args.rows_per_file < 1:
        print("error: --rows-per-file must be >= 1", file=sys.stderr)
        return 2
    try:
        index = EmbeddingIndex.load(args.index)
        files = export_jsonl(index, args.output, args.rows_per_file, MAX_FILES)
    except (IndexFileError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"wrote {len(index)} datapoints of dimension {index.embeddings.shape[1]} in {len(files)} files to {args.output}"
    )
    return 0
