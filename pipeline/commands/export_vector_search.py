"""`simsiam-tfx export-vector-search`: an embedding index as Vertex AI Vector Search input files."""

from __future__ import annotations

import argparse
import os
import sys

HELP = "write an embedding index as the JSON Lines files Vertex AI Vector Search builds an index from"
DESCRIPTION = """\
Writes every row of --index (the pipeline's index.npz, or one from `simsiam-tfx embed`) into --output
(a local folder or gs://BUCKET/PATH, empty) as embeddings-XXXXX.json: one line per image, with its id,
its L2-normalised embedding and restricts for its class and split (serving/vector_export.py), and beside
that folder --metadata-file, the index metadata that matches them (contentsDeltaUri = --output,
dimensions = the embedding width, distanceMeasureType DOT_PRODUCT_DISTANCE, featureNormType
UNIT_L2_NORM): `gcloud ai indexes create --metadata-file=...` (docs/search.md).
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", required=True, metavar="FILE.npz", help="embedding index")
    p.add_argument("--output", required=True, metavar="DIR", help="empty folder, local or gs://")
    p.add_argument("--rows-per-file", type=int, default=10_000, help="records per file (default: %(default)s)")
    p.add_argument(
        "--metadata-file", metavar="FILE.json", help="index metadata (default: OUTPUT_index_metadata.json, beside it)"
    )


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from serving.index import EmbeddingIndex, IndexFileError
    from serving.vector_export import MAX_FILES, export_jsonl, metadata_path

    if args.rows_per_file < 1:
        print("error: --rows-per-file must be >= 1", file=sys.stderr)
        return 2
    try:
        index = EmbeddingIndex.load(args.index)
        metadata = args.metadata_file or metadata_path(args.output)
        files = export_jsonl(index, args.output, args.rows_per_file, MAX_FILES, metadata)
    except (IndexFileError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"wrote {len(index)} datapoints of dimension {index.embeddings.shape[1]} in {len(files)} files to {args.output}"
    )
    print(f"wrote the index metadata to {metadata}: gcloud ai indexes create --metadata-file={metadata} ...")
    return 0
