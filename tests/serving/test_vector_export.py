"""`simsiam-tfx export-vector-search`: every line is a valid Vector Search record and the vectors round-trip."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest

from pipeline.cli import main
from serving.ann import unit_rows
from serving.index import EmbeddingIndex
from serving.vector_export import RECORD_SCHEMA, export_jsonl


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
    assert capsys.readouterr().out == f"wrote 5 datapoints of dimension 7 in 3 files to {out}\n"
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
