"""The EmbeddingIndexer's artifact stores the vectors once (in index.faiss), and everything that reads
it (`EmbeddingIndex.load`, `search --query-embedding`, `export-vector-search`) gets them back."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from components import features as F
from components.index.embedding_index import _write_local
from pipeline.cli import main
from serving import ann
from serving.index import EmbeddingIndex, IndexFileError


def _table(n: int, dim: int) -> EmbeddingIndex:
    """`n` rows of raw (not unit) embeddings around 20 centres, as a serving model gives them."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((20, dim))
    raw = (centres[rng.integers(0, 20, n)] + 0.3 * rng.standard_normal((n, dim))) * rng.uniform(0.5, 4, (n, 1))
    return EmbeddingIndex(
        paths=np.array([f"c{i % 3}/img{i:05d}.jpg" for i in range(n)]),
        embeddings=raw.astype(np.float32),
        labels=np.arange(n) % 3,
        class_names=np.array(["a", "b", "c"]),
        splits=np.where(np.arange(n) % 5 == 0, "eval", "train"),
        model_fingerprint="fp",
    )


@pytest.mark.parametrize("kind, exact_max_rows", [("exact", 100_000), ("ivf", 0)])
def test_the_vectors_are_stored_once_and_read_back(kind, exact_max_rows, tmp_path, capsys):
    table = _table(3000, 32)
    index = ann.build_index(table.embeddings, exact_max_rows=exact_max_rows, nprobe=4 if kind == "ivf" else None)
    assert index.meta.kind == kind
    _write_local(str(tmp_path), table, index, {"gate": {}}, projector_rows=50)

    npz = tmp_path / F.INDEX_FILE
    with zipfile.ZipFile(npz) as zf:
        members = sorted(zf.namelist())
    assert "embeddings.npy" not in members and "norms.npy" in members, members
    vector_bytes = table.embeddings.nbytes  # 384,000 bytes of float32 noise: no compression hides them
    assert npz.stat().st_size < vector_bytes / 4  # ids, labels, splits and norms only
    assert (tmp_path / ann.ANN_FILE).stat().st_size >= vector_bytes  # the one copy

    loaded = EmbeddingIndex.load(str(npz))
    np.testing.assert_allclose(loaded.embeddings, table.embeddings, rtol=1e-5, atol=1e-6)
    assert loaded.paths.tolist() == table.paths.tolist() and loaded.model_fingerprint == "fp"

    # search --query-embedding answers from that artifact what brute force answers
    query = table.embeddings[7] * 3
    np.save(tmp_path / "q.npy", query)
    assert main(["search", "--index", str(npz), "--query-embedding", str(tmp_path / "q.npy"), "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    unit = ann.unit_rows(table.embeddings)
    best = np.argsort(-(unit @ ann.unit_rows(query[None])[0]))[:3]
    assert [line.split()[3] for line in lines[2:]] == table.paths[best].tolist()

    # export-vector-search writes the same unit vectors
    assert main(["export-vector-search", "--index", str(npz), "--output", str(tmp_path / "vs")]) == 0
    records = [json.loads(line) for p in sorted((tmp_path / "vs").iterdir()) for line in p.read_text().splitlines()]
    np.testing.assert_allclose(np.array([r["embedding"] for r in records], np.float32), unit, atol=1e-6)


def test_an_npz_without_vectors_and_no_faiss_index_beside_it_says_so(tmp_path):
    path = _table(10, 4).save(str(tmp_path / "lone.npz"), vectors_in_faiss=True)
    with pytest.raises(IndexFileError, match="keeps its embeddings in index.faiss beside it"):
        EmbeddingIndex.load(path)
    ann.build_index(np.ones((9, 4))).save(str(tmp_path))  # another table's index: 9 rows, not 10
    with pytest.raises(IndexFileError, match="holds 9 rows but the table 10"):
        EmbeddingIndex.load(path)
    ann.build_index(np.ones((10, 4)), model_fingerprint="other").save(str(tmp_path))  # another model's
    with pytest.raises(IndexFileError, match="built from model other, the table from fp"):
        EmbeddingIndex.load(path)
