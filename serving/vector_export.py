"""An embedding index as the JSON Lines files Vertex AI Vector Search builds an index from.

Format (Vertex AI docs, "Input data format and structure",
https://cloud.google.com/vertex-ai/docs/vector-search/setup/format-structure): files directly under one
folder (the index's `contentsDeltaUri`), named `*.json`, one record per line, at most 5,000 files, no
gzip. A record here is `{"id": image id, "embedding": [D floats], "restricts": [{"namespace": "class",
"allow": [class name]}, {"namespace": "split", "allow": [split]}]}` (an unlabelled row has no class
restrict). The embeddings are L2-normalised, so the index's DOT_PRODUCT_DISTANCE is the cosine that
`simsiam-tfx search` ranks by. Floats are written with 9 significant digits, which reads back as the
same float32 (IEEE 754's FLT_DECIMAL_DIG).

`index_metadata` is the index's metadata file (`gcloud ai indexes create --metadata-file`; Vertex AI
docs, "Index configuration parameters", https://cloud.google.com/vertex-ai/docs/vector-search/configuring-indexes):
`contentsDeltaUri` = the folder of records, `config.dimensions` = their width, DOT_PRODUCT_DISTANCE
with UNIT_L2_NORM (the API reference's advice for cosine: "mathematically equivalent to COSINE
distance and results in the same ranking"), tree-AH with its defaults. It is written beside the
folder, not in it: Vector Search reads every `.json` file of the folder as records. Checked against
the documented structure (`INDEX_METADATA_SCHEMA`), never against the service itself.
"""

from __future__ import annotations

import json
import math

import numpy as np

from serving.ann import unit_rows
from serving.index import EmbeddingIndex

MAX_FILES = 5000  # Vertex AI: at most 5,000 objects in the batch root
ROWS_PER_FILE = 10_000
DISTANCE, FEATURE_NORM = "DOT_PRODUCT_DISTANCE", "UNIT_L2_NORM"
NEIGHBOURS = 10  # approximateNeighborsCount: the k of the project's gate (recall@10)
METADATA_FILE = "index_metadata.json"

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


# The metadata file, as JSON Schema: the `NearestNeighborSearch` fields that Vertex AI documents
# ("Index configuration parameters"), every one this project writes, with the documented enums.
INDEX_METADATA_SCHEMA = {
    "type": "object",
    "required": ["contentsDeltaUri", "config"],
    "additionalProperties": False,
    "properties": {
        "contentsDeltaUri": {"type": "string", "pattern": "/$"},
        "isCompleteOverwrite": {"type": "boolean"},
        "config": {
            "type": "object",
            "required": ["dimensions", "approximateNeighborsCount", "distanceMeasureType", "algorithmConfig"],
            "additionalProperties": False,
            "properties": {
                "dimensions": {"type": "integer", "minimum": 1},
                "approximateNeighborsCount": {"type": "integer", "minimum": 1},  # required with tree-AH
                "distanceMeasureType": {
                    "enum": ["SQUARED_L2_DISTANCE", "L1_DISTANCE", "COSINE_DISTANCE", "DOT_PRODUCT_DISTANCE"]
                },
                "featureNormType": {"enum": ["NONE", "UNIT_L2_NORM"]},
                "shardSize": {"enum": ["SHARD_SIZE_SMALL", "SHARD_SIZE_MEDIUM", "SHARD_SIZE_LARGE"]},
                "algorithmConfig": {
                    "type": "object",
                    "minProperties": 1,
                    "maxProperties": 1,
                    "additionalProperties": False,
                    "properties": {
                        "treeAhConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "leafNodeEmbeddingCount": {"type": "integer", "minimum": 1},
                                "leafNodesToSearchPercent": {"type": "integer", "minimum": 1, "maximum": 100},
                            },
                        },
                        "bruteForceConfig": {"type": "object", "maxProperties": 0},
                    },
                },
            },
        },
    },
}


def index_metadata(contents_uri: str, dimensions: int) -> dict:
    """The Vector Search index metadata for the records in folder `contents_uri` of width `dimensions`."""
    return {
        "contentsDeltaUri": contents_uri.rstrip("/") + "/",
        "config": {
            "dimensions": int(dimensions),
            "approximateNeighborsCount": NEIGHBOURS,
            "distanceMeasureType": DISTANCE,
            "featureNormType": FEATURE_NORM,
            "algorithmConfig": {"treeAhConfig": {}},
        },
    }


def metadata_path(output: str) -> str:
    """Where `export_jsonl` writes the metadata for folder `output`: beside it, `<output>_index_metadata.json`."""
    return f"{output.rstrip('/')}_{METADATA_FILE}"


def record(image_id: str, vector: np.ndarray, class_name: str | None, split: str | None) -> str:
    """One JSON line (no newline) for float32 `vector` `[D]` (already unit-norm)."""
    restricts = [
        {"namespace": name, "allow": [value]} for name, value in (("class", class_name), ("split", split)) if value
    ]
    head = json.dumps({"id": image_id})[:-1]  # '{"id": "..."', escaped by json
    tail = f', "restricts": {json.dumps(restricts)}' if restricts else ""
    return f'{head}, "embedding": [{",".join(f"{v:.9g}" for v in vector.tolist())}]{tail}}}'


def export_jsonl(
    index: EmbeddingIndex,
    output: str,
    rows_per_file: int = ROWS_PER_FILE,
    max_files: int = MAX_FILES,
    metadata_file: str | None = None,
) -> list[str]:
    """Writes `index` into folder `output` (local or gs://, through tf.io.gfile) as `embeddings-XXXXX.json`
    files of `rows_per_file` records (more per file when that would pass `max_files`), and the index
    metadata (`index_metadata`) to `metadata_file` (default `metadata_path(output)`, outside the folder);
    returns the paths of the record files.

    Raises ValueError for an empty index, duplicate image ids, an `output` that already holds files
    (Vertex reads every file of the folder), or a `metadata_file` inside `output`."""
    import tensorflow as tf

    n = len(index)
    if not n:
        raise ValueError("the index is empty: nothing to export")
    ids, counts = np.unique(index.paths.astype(str), return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"image ids must be unique for Vector Search; repeated: {ids[counts > 1][:5].tolist()}")
    metadata_file = metadata_file or metadata_path(output)
    if metadata_file.startswith(output.rstrip("/") + "/"):
        raise ValueError(f"{metadata_file} is inside {output}: Vector Search would read it as records")
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
    if "/" in metadata_file:
        tf.io.gfile.makedirs(metadata_file.rsplit("/", 1)[0])
    with tf.io.gfile.GFile(metadata_file, "w") as f:
        json.dump(index_metadata(output, vectors.shape[1]), f, indent=1)
    return written
