"""`simsiam-tfx export-vector-search`: every line is a valid Vector Search record and the vectors round-trip."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from pipeline.cli import main
from serving.ann import unit_rows
from serving.index import EmbeddingIndex
from serving.vector_export import INDEX_METADATA_SCHEMA, RECORD_SCHEMA, export_jsonl, index_metadata


@pytest.fixture()
def index() -> EmbeddingIndex:
    rng = np.random.default_rng(0)
    return EmbeddingIndex(
        paths=np.array(["roses/a b.jpg", 'tulips/"q".jpg', "roses/c.jpg", "x/ünlabelled.jpg", "tulips/e.jpg"]),
        embeddings=(rng.standard_normal((5, 7)) * 3).astype(np.float32),
        labels=np.array([0, 1, 0, -1, 1]),
        class_names=np.array(["roses", "tulips"]),
        splits=np.array(["train", "train", "eval", "unlabeled_train", "eval"]),
    )


def _records(files: list[str]) -> list[dict]:
    return [json.loads(line) for path in files for line in open(path, encoding="utf-8").read().splitlines()]


def test_every_line_validates_and_the_vectors_round_trip(index, tmp_path, capsys):
    out = tmp_path / "vs"
    assert (
        main(
            [
                "export-vector-search",
                "--index",
                index.save(str(tmp_path / "i.npz")),
                "--output",
                str(out),
                "--rows-per-file",
                "2",
            ]
        )
        == 0
    )
    meta = f"{out}_index_metadata.json"
    assert capsys.readouterr().out == (
        f"wrote 5 datapoints of dimension 7 in 3 files to {out}\n"
        f"wrote the index metadata to {meta}: gcloud ai indexes create --metadata-file={meta} ...\n"
    )
    files = sorted(str(p) for p in out.iterdir())
    assert [p.rsplit("/", 1)[1] for p in files] == [
        "embeddings-00000.json",
        "embeddings-00001.json",
        "embeddings-00002.json",
    ]
    records = _records(files)
    for r in records:
        jsonschema.validate(r, RECORD_SCHEMA)
    assert [r["id"] for r in records] == index.paths.tolist()
    np.testing.assert_array_equal(np.array([r["embedding"] for r in records], np.float32), unit_rows(index.embeddings))
    assert records[0]["restricts"] == [
        {"namespace": "class", "allow": ["roses"]},
        {"namespace": "split", "allow": ["train"]},
    ]
    assert records[3]["restricts"] == [{"namespace": "split", "allow": ["unlabeled_train"]}]  # no class
    # unit norm: Vector Search's DOT_PRODUCT_DISTANCE is then the cosine search ranks by
    np.testing.assert_allclose(np.linalg.norm([r["embedding"] for r in records], axis=1), 1.0, atol=1e-6)


def test_at_most_max_files_and_refusals(index, tmp_path):
    files = export_jsonl(index, str(tmp_path / "few"), rows_per_file=1, max_files=2)
    assert len(files) == 2 and len(_records(files)) == 5  # 3 rows per file rather than 5 files
    with pytest.raises(ValueError, match="already holds files"):
        export_jsonl(index, str(tmp_path / "few"))
    twice = EmbeddingIndex(paths=np.array(["a", "a"]), embeddings=np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"unique.*\['a'\]"):
        export_jsonl(twice, str(tmp_path / "dup"))
    with pytest.raises(ValueError, match="empty"):
        export_jsonl(EmbeddingIndex(paths=np.array([], str), embeddings=np.zeros((0, 3))), str(tmp_path / "e"))
    assert not (tmp_path / "dup").exists()


def test_the_index_metadata_matches_the_records_and_the_documented_config(index, tmp_path):
    """What Vertex AI would be told (index_metadata.json) against what it would read (the records),
    and the configuration docs/search.md shows against what the command writes."""
    out = tmp_path / "vs"
    meta_file = tmp_path / "meta" / "index_metadata.json"
    files = export_jsonl(index, str(out), rows_per_file=2, metadata_file=str(meta_file))
    metadata = json.loads(meta_file.read_text())
    jsonschema.validate(metadata, INDEX_METADATA_SCHEMA)
    assert metadata == {
        "contentsDeltaUri": f"{out}/",
        "config": {
            "dimensions": 7,
            "approximateNeighborsCount": 10,
            "distanceMeasureType": "DOT_PRODUCT_DISTANCE",
            "featureNormType": "UNIT_L2_NORM",
            "algorithmConfig": {"treeAhConfig": {}},
        },
    }
    # contentsDeltaUri holds the record files only, directly (Vertex: no other subdirectory, every file read)
    assert sorted(p.name for p in out.iterdir()) == sorted(Path(f).name for f in files)
    assert all(p.is_file() and p.suffix == ".json" for p in out.iterdir())
    records = _records(files)
    vectors = np.array([r["embedding"] for r in records])
    assert vectors.shape == (5, metadata["config"]["dimensions"])
    # DOT_PRODUCT_DISTANCE with UNIT_L2_NORM ranks as the cosine `search` uses; the stored rows are unit already
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert {x["namespace"] for r in records for x in r.get("restricts", [])} == {"class", "split"}
    assert all(len(x["allow"]) == 1 and set(x) == {"namespace", "allow"} for r in records for x in r["restricts"])

    # docs/search.md: its record example has the written fields, its metadata is the written one at 512-d
    doc = (Path(__file__).resolve().parents[2] / "docs" / "search.md").read_text()
    blocks = re.findall(r"```json\n(.*?)```", doc, re.S)
    assert len(blocks) == 2, "docs/search.md shows one record and one index metadata"
    shown = json.loads(blocks[1])
    jsonschema.validate(shown, INDEX_METADATA_SCHEMA)
    assert shown == index_metadata(shown["contentsDeltaUri"], 512)
    example = json.loads(blocks[0].replace(", ...]", "]"))
    jsonschema.validate(example, RECORD_SCHEMA)
    assert list(example) == list(records[0]) == ["id", "embedding", "restricts"]


def test_a_metadata_file_inside_the_folder_is_refused(index, tmp_path):
    with pytest.raises(ValueError, match="would read it as records"):
        export_jsonl(index, str(tmp_path / "vs"), metadata_file=str(tmp_path / "vs" / "index_metadata.json"))
    assert not (tmp_path / "vs").exists()
