"""serving/ann.py: the faiss index (exact and IVF), its brute-force reference, and the recall gate."""

from __future__ import annotations

import numpy as np
import pytest

from serving import ann
from serving.index import IndexFileError


def clustered(n: int, dim: int, clusters: int, spread: float, seed: int) -> np.ndarray:
    """Unit rows drawn around `clusters` random unit centres (what embeddings of a few classes look like)."""
    rng = np.random.default_rng(seed)
    centres = ann.unit_rows(rng.standard_normal((clusters, dim)))
    noise = rng.standard_normal((n, dim)) * spread / np.sqrt(dim)
    return ann.unit_rows(centres[rng.integers(0, clusters, n)] + noise)


# ---------------------------------------------------------------- by hand


def test_exact_index_answers_cosine_neighbours_by_hand():
    base = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [-3.0, 0.0]])
    index = ann.build_index(base)
    assert index.meta.kind == "exact" and (index.meta.rows, index.meta.dimension) == (4, 2)
    rows, sims = index.search(np.array([[2.0, 0.0]]), k=3)
    # cosines with (1, 0): 1, 0, 1/sqrt(2), -1
    np.testing.assert_array_equal(rows, [[0, 2, 1]])
    np.testing.assert_allclose(sims, [[1.0, 2**-0.5, 0.0]], atol=1e-6)
    rows, _ = index.search(np.array([[2.0, 0.0]]), k=10)  # k larger than the index: every row
    assert sorted(rows[0].tolist()) == [0, 1, 2, 3]
    rows, _ = index.search(np.array([[2.0, 0.0]]), k=10, rows=np.array([1, 3]))  # only these rows
    np.testing.assert_array_equal(rows, [[1, 3]])
    with pytest.raises(IndexFileError, match="another model"):
        index.search(np.ones((1, 3)), k=1)
    with pytest.raises(ValueError, match="non-empty"):
        ann.build_index(np.zeros((0, 4)))
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        ann.build_index(np.ones(4))


def test_exact_top_k_excludes_the_query_row():
    vectors = ann.unit_rows(np.array([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]))
    rows, sims = ann.exact_top_k(vectors, vectors[[0, 3]], k=2, exclude=np.array([0, 3]))
    # row 0: its twin row 1 (1.0), then row 2 (0.6); row 3: row 2 (0.8), then a tie of rows 0 and 1 (0.0)
    assert rows[0].tolist() == [1, 2] and rows[1, 0] == 2 and rows[1, 1] in (0, 1)
    np.testing.assert_allclose(sims, [[1.0, 0.6], [0.8, 0.0]], atol=1e-6)


def test_recall_counts_ties_and_true_scores_not_claimed_ids():
    vectors = ann.unit_rows(np.array([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]))
    query = vectors[[3]]
    exact = np.array([[0.8, 0.0]])  # rows 2, then 0 or 1 (tied)
    assert ann.recall_at_k(vectors, query, np.array([[2, 1]]), exact) == 1.0  # the other tied row is a hit
    assert ann.recall_at_k(vectors, query, np.array([[2, -1]]), exact) == 0.5  # no answer: a miss
    assert ann.recall_at_k(vectors, query, np.array([[2, 0]]), np.array([[0.8, 0.6]])) == 0.5  # 0.0 < 0.6


def test_ivf_cells_follow_the_faiss_guideline():
    assert ann.ivf_cells(1_000_000) == 4000  # 4 * sqrt(N)
    assert ann.ivf_cells(150_000) == round(4 * np.sqrt(150_000))
    assert ann.ivf_cells(1000) == 1000 // 39  # few rows: at least 39 training points per cell
    assert ann.ivf_cells(10) == 1


def test_save_and_load_round_trip(tmp_path):
    vectors = clustered(300, 8, 5, 0.5, seed=0)
    index = ann.build_index(vectors, model_fingerprint="fp1")
    index.save(str(tmp_path))
    loaded = ann.AnnIndex.load(str(tmp_path))
    assert loaded.meta == index.meta and loaded.meta.model_fingerprint == "fp1"
    np.testing.assert_array_equal(loaded.search(vectors[:5], 4)[0], index.search(vectors[:5], 4)[0])
    (tmp_path / ann.ANN_FILE).write_bytes(b"not faiss")
    with pytest.raises(IndexFileError, match="not a faiss index"):
        ann.AnnIndex.load(str(tmp_path))
    with pytest.raises(IndexFileError, match="lacks"):
        ann.AnnIndex.load(str(tmp_path / "none"))


# ---------------------------------------------------------------- the approximate path and the gate


@pytest.fixture(scope="module")
def clusters() -> np.ndarray:
    return clustered(20_000, 32, clusters=200, spread=0.6, seed=1)


def test_ivf_above_the_threshold_passes_the_gate(clusters):
    index = ann.build_index(clusters, exact_max_rows=10_000)
    assert index.meta.kind == "ivf" and index.meta.nlist == ann.ivf_cells(20_000)
    assert 1 <= index.meta.nprobe <= index.meta.nlist
    report = ann.measure_index(index, clusters, queries=1000, seed=0)
    assert report["queries"] == 1000 and report["threads"] >= 1 and report["kind"] == "ivf"
    assert report["latency_ms_p50"] <= report["latency_ms_p95"] and report["queries_per_s_batch64"] > 0
    result = ann.gate_result(report, min_recall=0.95)
    assert result["recall_at_10"] >= 0.95 and result["passed"]
    ann.check_recall(result)  # does not raise
    # The approximate answers' scores are exact inner products (IVF-Flat keeps the full vectors).
    rows, sims = index.search(clusters[:50], 10)
    np.testing.assert_allclose(sims, np.einsum("qkd,qd->qk", clusters[rows], clusters[:50]), atol=1e-5)


def test_ivf_that_must_scan_every_cell_falls_back_to_the_exact_index():
    uniform = ann.unit_rows(np.random.default_rng(0).standard_normal((5000, 64)))  # no clusters to exploit
    index = ann.build_index(uniform, exact_max_rows=0, model_fingerprint="fp")
    assert (index.meta.kind, index.meta.nlist, index.meta.model_fingerprint) == ("exact", 0, "fp")
    forced = ann.build_index(uniform, exact_max_rows=0, nprobe=2)  # given, not tuned: kept
    assert forced.meta.kind == "ivf" and ann.measure_index(forced, uniform)["recall_at_10"] < 0.95


def test_exact_index_scores_recall_one(clusters):
    report = ann.measure_index(ann.build_index(clusters[:3000]), clusters[:3000], queries=1000)
    assert report["recall_at_10"] == 1.0 and report["kind"] == "exact"


def test_a_too_coarse_ivf_on_clustered_data_fails_the_gate_with_its_figures(clusters):
    coarse = ann.build_index(clusters, exact_max_rows=0, nlist=512, nprobe=1)
    result = ann.gate_result(ann.measure_index(coarse, clusters, queries=1000), min_recall=0.95)
    assert not result["passed"] and result["recall_at_10"] < 0.95
    with pytest.raises(ann.IndexGateError) as failure:
        ann.check_recall(result)
    message = str(failure.value)
    assert message.startswith(f"index gate failed: recall_at_10 = {result['recall_at_10']:.4f} < 0.95 (ivf index")
    assert "nlist 512, nprobe 1, 1000 queries" in message and "queries/s at batch 64" in message


def test_an_index_with_permuted_row_ids_fails_the_gate():
    import faiss

    vectors = clustered(2000, 16, 20, 0.6, seed=3)
    good = ann.build_index(vectors)
    permuted = faiss.IndexIDMap(faiss.IndexFlatIP(16))
    permuted.add_with_ids(vectors, np.random.default_rng(0).permutation(len(vectors)).astype(np.int64))
    broken = ann.AnnIndex(permuted, good.meta)
    result = ann.gate_result(ann.measure_index(broken, vectors, queries=1000), min_recall=0.95)
    assert result["queries"] == 1000 and result["recall_at_10"] < 0.1
    with pytest.raises(ann.IndexGateError, match=r"recall_at_10 = 0\.\d{4} < 0\.95 \(exact index, 2000 rows"):
        ann.check_recall(result)


def test_an_index_of_one_row_has_no_recall_and_passes():
    result = ann.gate_result(ann.measure_index(ann.build_index(np.ones((1, 4))), np.ones((1, 4))), 0.95)
    assert result["recall_at_10"] is None and result["passed"] and result["queries"] == 1
