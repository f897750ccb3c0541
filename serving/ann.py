"""The nearest-neighbour index over an embedding table (faiss; numpy and faiss only, no TensorFlow).

Cosine similarity is the inner product of L2-normalised vectors, so every index here is a faiss
inner-product index over unit rows (faiss wiki, "MetricType and distances": "to index for cosine
similarity, normalize the vectors and use METRIC_INNER_PRODUCT"):

- up to `EXACT_MAX_ROWS` rows, `IndexFlatIP`: exact, no training, and at that size one query costs
  about as much as the queries' own embedding, so nothing is worth approximating;
- above it, `IndexIVFFlat`: k-means cells (`nlist`), a query scans the `nprobe` nearest cells only.
  IVF-Flat keeps the full float32 vectors in its cells, so the scores it returns are exact inner
  products (exact re-scoring); only the choice of cells is approximate. `nlist` follows faiss'
  guideline of 4*sqrt(N) to 16*sqrt(N) cells for N up to 1M (faiss wiki, "Guidelines to choose an
  index"), with at least 39 training points per cell; `nprobe` is doubled until recall@10 on a seeded
  sample of the index's own rows reaches the target (`tune_nprobe`); when that takes more than a
  quarter of the cells (`MAX_PROBE_SHARE`), the exact index is used instead.

On disk a built index is two files in one folder: `index.faiss` (`faiss.write_index`) and
`index_meta.json` (`AnnMeta`: kind, metric, dimension, rows, nlist, nprobe, the model fingerprint).
Row r of the faiss index is row r of the index table (`serving/index.py`, `paths` = image ids).
`index.faiss` is the one copy of the vectors: both kinds keep the full float32 unit rows, and
`AnnIndex.vectors` reads them back (`reconstruct_n`), so the pipeline's `index.npz` keeps only each
row's norm beside its ids, labels and thumbnails (`EmbeddingIndex.save(..., vectors_in_faiss=True)`).
`measure_index` gives the figures the EmbeddingIndexer gates on (`check_recall`).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np

from serving.index import IndexFileError

ANN_FILE = "index.faiss"
META_FILE = "index_meta.json"
EXACT_MAX_ROWS = 100_000
METRIC = "inner_product_of_unit_vectors"
MIN_POINTS_PER_CELL = 39  # faiss warns below this many training points per centroid
# k-means sample: faiss' guidance is 30 to 256 points per centroid; k-means costs points x cells x D
# per iteration, so the low end of that range bounds the build at a million rows (timings: docs/search.md)
TRAIN_POINTS_PER_CELL = 40
# An IVF whose tuned nprobe passes this share of its cells is replaced by the exact index: faiss' per-cell
# scan is slower per vector than the flat (BLAS) scan, so scanning a large share of the cells costs as
# much as scanning every row (docs/search.md, the uniform rows of the benchmark).
MAX_PROBE_SHARE = 0.25


class IndexGateError(RuntimeError):
    """The index answers too far from exact search (recall@k below the threshold)."""


@dataclass(frozen=True)
class AnnMeta:
    kind: str  # "exact" (IndexFlatIP) or "ivf" (IndexIVFFlat)
    dimension: int
    rows: int
    metric: str = METRIC
    nlist: int = 0
    nprobe: int = 0
    model_fingerprint: str = ""
    faiss_version: str = ""


def unit_rows(x: np.ndarray) -> np.ndarray:
    """float `[N, D]` -> C-contiguous float32 `[N, D]` with unit L2 rows (zero rows stay zero)."""
    x = np.asarray(x, np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


def ivf_cells(rows: int) -> int:
    """`nlist` for `rows` vectors: 4*sqrt(N) (faiss' guideline), at most N / 39 so k-means has data."""
    return int(max(1, min(round(4 * math.sqrt(rows)), rows // MIN_POINTS_PER_CELL)))


class AnnIndex:
    """A faiss index over unit rows and its `AnnMeta`; `search` answers row numbers and cosines."""

    def __init__(self, index, meta: AnnMeta):
        self.index, self.meta = index, meta

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def vectors(self) -> np.ndarray:
        """float32 `[N, D]`: the unit rows the index holds, row r = row r of the table (faiss
        `reconstruct_n`; IVF-Flat stores them whole in its cells, so this is exact)."""
        return self.index.reconstruct_n(0, len(self))

    def search(
        self, queries: np.ndarray, k: int, rows: np.ndarray | None = None, nprobe: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """float `[Q, D]` -> (rows int64 `[Q, k']`, cosines float32 `[Q, k']`), best first, k' = min(k, allowed rows).

        `rows`: search only these row numbers (faiss `IDSelectorBatch`). Raises IndexFileError when
        D is not the index's dimension (an index built by another model)."""
        import faiss

        queries = np.atleast_2d(np.asarray(queries))
        if queries.shape[1] != self.meta.dimension:
            raise IndexFileError(
                f"the index holds {self.meta.dimension}-d embeddings but the query is "
                f"{queries.shape[1]}-d: was the index built with another model?"
            )
        k = min(k, len(self) if rows is None else len(rows))
        selector = None if rows is None else faiss.IDSelectorBatch(np.asarray(rows, np.int64))
        if self.meta.kind == "ivf":
            params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe or self.meta.nprobe)
        else:
            params = faiss.SearchParameters(sel=selector)
        sims, ids = self.index.search(unit_rows(queries), k, params=params)
        return ids.astype(np.int64), sims

    def save(self, folder: str) -> None:
        """Writes `index.faiss` and `index_meta.json` into local `folder`."""
        import faiss

        os.makedirs(folder, exist_ok=True)
        faiss.write_index(self.index, os.path.join(folder, ANN_FILE))
        with open(os.path.join(folder, META_FILE), "w") as f:
            json.dump(asdict(self.meta), f, indent=1)

    @classmethod
    def load(cls, folder: str) -> AnnIndex:
        """Reads what `save` wrote; raises IndexFileError when a file is missing or does not match."""
        import faiss

        paths = [os.path.join(folder, name) for name in (ANN_FILE, META_FILE)]
        if not all(os.path.isfile(p) for p in paths):
            raise IndexFileError(f"{folder} lacks {ANN_FILE} or {META_FILE}")
        with open(paths[1]) as f:
            meta = AnnMeta(**json.load(f))
        try:
            index = faiss.read_index(paths[0])
        except RuntimeError as err:
            raise IndexFileError(f"{paths[0]} is not a faiss index: {str(err).splitlines()[0]}") from err
        if index.d != meta.dimension or index.ntotal != meta.rows:
            raise IndexFileError(
                f"{paths[0]} holds {index.ntotal} x {index.d} but {META_FILE} says {meta.rows} x {meta.dimension}"
            )
        return cls(index, meta)


def build_index(
    vectors: np.ndarray,
    exact_max_rows: int = EXACT_MAX_ROWS,
    nlist: int | None = None,
    nprobe: int | None = None,
    target_recall: float = 0.96,
    model_fingerprint: str = "",
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> AnnIndex:
    """An AnnIndex over float `[N, D]` embeddings (normalised here): exact up to `exact_max_rows` rows, else IVF.

    IVF: `nlist` defaults to `ivf_cells(N)`; k-means trains on a seeded sample of 40 points per cell;
    `nprobe`, unless given, is tuned to `target_recall` (a margin above the gate's 0.95, since the gate
    then measures on another sample). When the tuned nprobe has to scan more than a quarter of the
    cells (vectors without cluster structure, e.g. i.i.d. uniform), the exact index is returned
    instead: exact answers, no slower than that IVF. `log`: called with one line per long phase (k-means, adding
    the rows, each nprobe tried). Raises ValueError for an empty or non-2-d table."""
    import faiss

    if np.ndim(vectors) != 2 or not len(vectors):
        raise ValueError(f"need a non-empty [N, D] table, got shape {np.shape(vectors)}")
    x = unit_rows(vectors)
    n, d = x.shape
    base = {
        "dimension": int(d),
        "rows": int(n),
        "model_fingerprint": model_fingerprint,
        "faiss_version": faiss.__version__,
    }
    if n <= exact_max_rows:
        index = faiss.IndexFlatIP(d)
        index.add(x)
        return AnnIndex(index, AnnMeta(kind="exact", **base))
    nlist = nlist or ivf_cells(n)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    rng = np.random.default_rng(seed)
    train = (
        x
        if n <= TRAIN_POINTS_PER_CELL * nlist
        else x[np.sort(rng.choice(n, TRAIN_POINTS_PER_CELL * nlist, replace=False))]
    )
    log = log or (lambda line: None)
    start = time.perf_counter()
    log(f"k-means: {nlist} cells on {len(train)} of {n} rows, {index.cp.niter} iterations")
    index.train(train)
    log(f"k-means done in {time.perf_counter() - start:.1f} s; adding {n} rows")
    start = time.perf_counter()
    index.add(x)
    log(f"added in {time.perf_counter() - start:.1f} s")
    ann = AnnIndex(index, AnnMeta(kind="ivf", nlist=nlist, nprobe=nprobe or 1, **base))
    if nprobe is None:
        ann.meta = replace(ann.meta, nprobe=tune_nprobe(ann, x, target_recall, seed=seed + 1, log=log))
        if ann.meta.nprobe >= nlist:  # no structure to exploit: the IVF would be a slower flat scan
            log(f"recall needs more than {MAX_PROBE_SHARE:.0%} of the {nlist} cells: the exact index instead")
            del ann, index  # frees the IVF's copy of the vectors before the exact index makes its own
            return build_index(x, exact_max_rows=n, model_fingerprint=model_fingerprint)
    return ann


def exact_top_k(
    vectors: np.ndarray, queries: np.ndarray, k: int, exclude: np.ndarray | None = None, chunk: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """numpy brute force: (rows int64 `[Q, k]`, inner products float32 `[Q, k]`), best first.

    `vectors` `[N, D]` and `queries` `[Q, D]` unit float32; `exclude` int `[Q]`: a row each query may not
    answer (itself). `np.argpartition` picks the k best in O(N) per query, then only those k are sorted,
    the fair baseline (a full sort is O(N log N))."""
    rows, sims = [], []
    for start in range(0, len(queries), chunk):
        s = queries[start : start + chunk] @ vectors.T
        if exclude is not None:
            s[np.arange(len(s)), exclude[start : start + chunk]] = -np.inf
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        top_s = np.take_along_axis(s, top, axis=1)
        order = np.argsort(-top_s, axis=1, kind="stable")
        rows.append(np.take_along_axis(top, order, axis=1))
        sims.append(np.take_along_axis(top_s, order, axis=1))
    return np.concatenate(rows).astype(np.int64), np.concatenate(sims)


def recall_at_k(vectors: np.ndarray, queries: np.ndarray, found: np.ndarray, exact_sims: np.ndarray) -> float:
    """Share of the found rows (int `[Q, k]`) whose true inner product with their query reaches the exact
    k-th best (`exact_sims[:, -1]`, minus 1e-5 for float32 rounding).

    Scoring by the true value, not by id, counts a tie at rank k as a hit and ignores the scores the
    index claims, so an index whose row numbers are wrong scores near 0. Rows -1 (no answer) miss."""
    valid = found >= 0
    true = np.einsum("qkd,qd->qk", vectors[np.where(valid, found, 0)], queries)
    hits = valid & (true >= exact_sims[:, -1:] - 1e-5)
    return float(hits.mean())


def _search_without_self(ann: AnnIndex, queries: np.ndarray, own: np.ndarray, k: int, **kw) -> np.ndarray:
    """The k best rows of each query other than its own row `own` (searches k + 1, drops it)."""
    rows, _ = ann.search(queries, k + 1, **kw)
    keep = rows != own[:, None]
    return np.stack([r[m][:k] for r, m in zip(rows, keep)])


def tune_nprobe(
    ann: AnnIndex,
    vectors: np.ndarray,
    target: float,
    queries: int = 500,
    k: int = 10,
    seed: int = 1,
    log: Callable[[str], None] | None = None,
) -> int:
    """The smallest power-of-two `nprobe` whose recall@k on a seeded sample of rows reaches `target`, or
    nlist (scan everything) when none up to `MAX_PROBE_SHARE` of the cells does. `vectors`: the index's
    unit rows `[N, D]`; `log`: one line per nprobe tried."""
    rng = np.random.default_rng(seed)
    own = np.sort(rng.choice(len(vectors), min(queries, len(vectors)), replace=False))
    k = min(k, len(vectors) - 1)
    _, exact = exact_top_k(vectors, vectors[own], k, exclude=own)
    nprobe = 1
    while nprobe <= max(1.0, MAX_PROBE_SHARE * ann.meta.nlist):
        found = _search_without_self(ann, vectors[own], own, k, nprobe=nprobe)
        recall = recall_at_k(vectors, vectors[own], found, exact)
        if log:
            log(f"nprobe {nprobe}: recall@{k} {recall:.4f} on {len(own)} rows (target {target})")
        if recall >= target:
            return nprobe
        nprobe *= 2
    return ann.meta.nlist


def measure_index(ann: AnnIndex, vectors: np.ndarray, queries: int = 1000, k: int = 10, seed: int = 0) -> dict:
    """The gate's figures on a seeded sample of `queries` rows of the index (all rows if fewer), each
    query's own row excluded from both answers: recall@k against `exact_top_k`, latency at batch 1
    (p50/p95, ms), queries/s at batch 64, faiss' thread count. `vectors`: the rows the index was built
    from, float `[N, D]`. With one row there is no neighbour to find: recall is None."""
    import faiss

    x = unit_rows(vectors)
    rng = np.random.default_rng(seed)
    own = np.sort(rng.choice(len(x), min(queries, len(x)), replace=False))
    k_eff = min(k, len(x) - 1)
    report = {
        "kind": ann.meta.kind,
        "rows": len(x),
        "queries": len(own),
        "k": k,
        "nlist": ann.meta.nlist,
        "nprobe": ann.meta.nprobe,
        "threads": int(faiss.omp_get_max_threads()),
        "seed": seed,
    }
    q = x[own]
    recall = None
    if k_eff >= 1:
        _, exact = exact_top_k(x, q, k_eff, exclude=own)
        recall = recall_at_k(x, q, _search_without_self(ann, q, own, k_eff), exact)
    latencies = []
    for row in q:
        start = time.perf_counter()
        ann.search(row[None], k_eff + 1)
        latencies.append(time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(0, len(q), 64):
        ann.search(q[i : i + 64], k_eff + 1)
    seconds = time.perf_counter() - start
    return {
        **report,
        f"recall_at_{k}": None if recall is None else round(recall, 4),
        "latency_ms_p50": round(1e3 * float(np.percentile(latencies, 50)), 4),
        "latency_ms_p95": round(1e3 * float(np.percentile(latencies, 95)), 4),
        "queries_per_s_batch64": round(len(q) / max(seconds, 1e-9), 1),
    }


def gate_result(report: dict, min_recall: float) -> dict:
    """`report` (from `measure_index`) with `min_recall` and `passed` (recall@k >= min_recall; a None
    recall, an index of one row, passes)."""
    recall = report[f"recall_at_{report['k']}"]
    return {**report, "min_recall": min_recall, "passed": recall is None or recall >= min_recall}


def check_recall(result: dict) -> None:
    """Raises IndexGateError, with the figures and the threshold, when `result` (`gate_result`) did not pass."""
    if result["passed"]:
        return
    key = f"recall_at_{result['k']}"
    raise IndexGateError(
        f"index gate failed: {key} = {result[key]:.4f} < {result['min_recall']} ({result['kind']} index, "
        f"{result['rows']} rows, nlist {result['nlist']}, nprobe {result['nprobe']}, {result['queries']} queries; "
        f"p50 {result['latency_ms_p50']} ms, p95 {result['latency_ms_p95']} ms at batch 1, "
        f"{result['queries_per_s_batch64']} queries/s at batch 64, {result['threads']} threads)"
    )
