"""An embedding index as the JSON Lines files Vertex AI Vector Search builds an index from.

Format (Vertex AI docs, "Input data format and structure",
https://cloud.google.com/vertex-ai/docs/vector-search/setup/format-structure): files directly under one
folder (the index's `contentsDeltaUri`), named `*.json`, one record per line, at most 5,000 files, no
gzip. A record here is `{"id": image id, "embedding": [D floats], "restricts": [{"namespace": "class",
"allow": [class name]}, {"namespace": "split", "allow": [split]}]}` (an unlabelled row has no class
restrict). The embeddings are L2-normalised, so the index's DOT_PRODUCT_DISTANCE is the cosine that
`simsiam-tfx search` ranks by. Floats are written with 9 significant digits, which reads back as the
same float32 (IEEE 754's FLT_DECIMAL_DIG).
"""

from __future__ import annotations

import json
import math

import numpy as np

from serving.ann import unit_rows
from serving.index import EmbeddingIndex

MAX_FILES = 5000  # Vertex AI: at most 5,000 objects in the batch root
ROWS_PER_FILE = 10_000

# One record, as JSON Schema (draft 2020-12): what `export_jsonl` writes and its test validates.
RECORD_SCHEMA = {
    "type": "object",
    "required": ["id", "embedding"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "embedding": {"type": "array", "items": {"type": "number"}, "minItems": 1},
        "restricts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["namespace", "allow"],
                "additionalProperties": False,
                "properties": {
                    "namespace": {"type": "string"},
                    "allow": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                },
            },
        },
    },
}


def record(image_id: str, vector: np.ndarray, class_name: str | None, split: str | None) -> str:
    """One JSON line (no newline) for float32 `vector` `[D]` (already unit-norm)."""
    restricts = [
        {"namespace": name, "allow": [value]} for name, value in (("class", class_name), ("split", split)) if value
    ]
    head = json.dumps({"id": image_id})[:-1]  # '{"id": "..."', escaped by json
    tail = f', "restricts": {json.dumps(restricts)}' if restricts else ""
    return f'{head}, "embedding": [{",".join(f"{v:.9g}" for v in vector.tolist())}]{tail}}}'


def export_jsonl(
    index: EmbeddingIndex, output: str, rows_per_file: int = ROWS_PER_FILE, max_files: int = MAX_FILES
) -> list[str]:
    """Writes `index` into folder `output` (local or gs://, through tf.io.gfile) as `embeddings-XXXXX.json`
    files of `rows_per_file` records (more per file when that would pass `max_files`); returns their paths.

    Raises ValueError for an empty index, duplicate image ids, or an `output` that already holds files
    (Vertex reads every file of the folder)."""
    import tensorflow as tf

    n = len(index)
    if not n:
        raise ValueError("the index is empty: nothing to export")
    ids, counts = np.unique(index.paths.astype(str), return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"image ids must be unique for Vector Search; repeated: {ids[counts > 1][:5].tolist()}")
    if tf.io.gfile.exists(output) and tf.io.gfile.listdir(output):
        raise ValueError(f"{output} already holds files: Vector Search would read them too; give an empty folder")
    tf.io.gfile.makedirs(output)
    per_file = max(rows_per_file, math.ceil(n / max_files))
    vectors = unit_rows(index.embeddings)
    written = []
    for number, start in enumerate(range(0, n, per_file)):
        path = f"{output.rstrip('/')}/embeddings-{number:05d}.json"
        with tf.io.gfile.GFile(path, "w") as f:
            for row in range(start, min(start + per_file, n)):
                split = None if index.splits is None else str(index.splits[row])
                f.write(record(str(index.paths[row]), vectors[row], index.class_of(row), split) + "\n")
        written.append(path)
    return written
