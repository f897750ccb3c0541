"""The search benchmark: its synthetic tables, and a 50k-vector run of the command (no timing asserts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.search import clustered_table, uniform_table
from serving.ann import exact_top_k, ivf_cells

REPO = Path(__file__).resolve().parents[2]


def test_tables_are_seeded_unit_rows_and_queries_are_not_index_rows():
    rows, queries = clustered_table(2000, 50, 16, clusters=10, spread=1.0, seed=0)
    assert rows.shape == (2000, 16) and queries.shape == (50, 16) and rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(clustered_table(2000, 50, 16, 10, 1.0, seed=0)[0], rows)
    best, sims = exact_top_k(rows, queries, 1)
    assert (sims[:, 0] < 1 - 1e-4).all()  # fresh draws, not copies of index rows
    # Clustered: a query's 10th neighbour is much closer than among uniform directions.
    uniform, uq = uniform_table(2000, 50, 16, seed=1)
    assert exact_top_k(rows, queries, 10)[1][:, -1].mean() > exact_top_k(uniform, uq, 10)[1][:, -1].mean() + 0.1


def test_the_50k_benchmark_prints_a_table_and_writes_its_json(tmp_path):
    args = [
        "--vectors",
        "50000",
        "--dim",
        "128",
        "--queries",
        "500",
        "--batch1-queries",
        "100",
        "--output-dir",
        str(tmp_path),
    ]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.search", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].split()[:2] == ["table", "method"] and len(lines) == 2 + 4 + 1
    record = json.loads(lines[-1])
    assert json.loads((tmp_path / "search-50000x128.json").read_text()) == record
    assert record["command"] == "python -m benchmarks.search " + " ".join(args)
    assert record["device"].startswith("cpu: ") and "faiss 1." in record["device"]
    assert len(record["load_average_1min"]) == 2
    brute_c, ivf_c, brute_u, ivf_u = record["results"]
    assert [r["table"] for r in record["results"]] == ["clustered", "clustered", "uniform", "uniform"]
    assert brute_c["method"] == "numpy brute force" and brute_c["recall_at_10"] == 1.0
    assert ivf_c["method"].startswith(f"faiss IVF-Flat nlist {ivf_cells(50_000)} nprobe ")
    assert ivf_c["recall_at_10"] >= 0.95  # clustered data: the gate's threshold holds on fresh queries
    assert 0 <= ivf_u["recall_at_10"] <= 1 and brute_u["recall_at_10"] == 1.0
    for brute, ivf in ((brute_c, ivf_c), (brute_u, ivf_u)):
        assert ivf["speedup_batch1"] == pytest.approx(ivf["qps_batch1"] / brute["qps_batch1"], abs=0.06)
        assert ivf["build_s"] > 0 and ivf["peak_added_mb"] > 0 and brute["qps_batch64"] > 0
    assert record["target"]["met_on_clustered"] == (ivf_c["recall_at_10"] >= 0.95 and ivf_c["speedup_batch1"] >= 20)


def test_the_benchmark_rejects_a_table_smaller_than_two_k():
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.search", "--vectors", "5"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 2 and "--vectors >= 20" in done.stderr
