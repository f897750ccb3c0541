"""The embedding index file (`.npz`) and cosine nearest neighbours over it (numpy only).

Keys: `paths` (str [N]; image ids for the pipeline's index, file paths for `simsiam-tfx embed`),
`embeddings` (float32 [N, D]); optional: `labels` (int64 [N], -1 when unknown), `class_names`
(str [C]), `splits` (str [N]), `thumbnails` (uint8 [M, T, T, 3], for drawing neighbours whose files
are elsewhere; M = N, or a bounded sample whose rows are `thumbnail_rows`, int64 [M]), `model` (where
the embeddings came from), `model_fingerprint` (SavedModel checksum).
Strings are stored as numpy unicode arrays, so the file loads without pickle.

The pipeline's index keeps one copy of the vectors: the faiss index beside the `.npz` (`index.faiss`,
serving/ann.py) holds the unit rows, and the `.npz` has `norms` (float32 [N], each row's L2 norm)
instead of `embeddings` (`save(..., vectors_in_faiss=True)`); `load` reads the rows back from faiss and
scales them by their norms, so `embeddings` is what the model gave (to float32 rounding). The `.npz`
of `simsiam-tfx embed` has no faiss index and keeps `embeddings`.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, fields, replace

import numpy as np

from models.evaluation import cosine_top_k
from serving.atomic import atomic_file


class IndexFileError(ValueError):
    """The index file is missing, malformed, or does not fit the query."""


@dataclass(frozen=True)
class EmbeddingIndex:
    paths: np.ndarray
    embeddings: np.ndarray
    labels: np.ndarray | None = None
    class_names: np.ndarray | None = None
    splits: np.ndarray | None = None
    thumbnails: np.ndarray | None = None
    model: str = ""
    model_fingerprint: str = ""
    thumbnail_rows: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.paths)
        if self.embeddings.ndim != 2 or len(self.embeddings) != n:
            raise IndexFileError(f"embeddings must be [N={n}, D], got shape {self.embeddings.shape}")
        for name in ("labels", "splits") + (("thumbnails",) if self.thumbnail_rows is None else ()):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise IndexFileError(f"{name} has {len(value)} rows for {n} paths")
        if self.thumbnail_rows is not None and (
            self.thumbnails is None
            or len(self.thumbnails) != len(self.thumbnail_rows)
            or (len(self.thumbnail_rows) and not 0 <= self.thumbnail_rows.min() <= self.thumbnail_rows.max() < n)
        ):
            raise IndexFileError(f"thumbnail_rows must name one row < {n} per thumbnail")

    def __len__(self) -> int:
        return len(self.paths)

    def save(self, path: str, vectors_in_faiss: bool = False) -> str:
        """Writes the `.npz`; `vectors_in_faiss`: the rows' norms instead of `embeddings`, for a file
        whose folder also gets the faiss index of these rows (the caller writes it)."""
        arrays = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or (isinstance(value, str) and not value):
                continue
            arrays[f.name] = np.asarray(value)
        if vectors_in_faiss:
            arrays["norms"] = np.linalg.norm(arrays.pop("embeddings"), axis=1).astype(np.float32)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        # np.savez_compressed's layout, written here: its ZipFile is left open when a write fails, and closing
        # it later (after atomic_file removed the file) printed an "Exception ignored ... Traceback".
        with atomic_file(path, "wb") as out, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            for name, value in arrays.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, value)
        return path

    @classmethod
    def load(cls, path: str, ann=None) -> EmbeddingIndex:
        """Reads `path`; for a file without `embeddings` (`vectors_in_faiss`), the rows come from the
        faiss index in its folder, or `ann` (serving.ann.AnnIndex) when the caller has loaded it."""
        if not os.path.isfile(path):
            raise IndexFileError(f"index file {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as err:
            raise IndexFileError(f"{path} is not an embedding index (.npz): {err}") from err
        if "embeddings" not in arrays and "norms" in arrays:
            fingerprint = str(arrays.get("model_fingerprint", ""))
            arrays["embeddings"] = _vectors_from_faiss(path, arrays["norms"], fingerprint, ann)
        missing = {"paths", "embeddings"} - set(arrays)
        if missing:
            raise IndexFileError(f"{path} lacks {sorted(missing)} (has {sorted(arrays)})")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in arrays.items() if k in known}
        for key in ("model", "model_fingerprint"):
            if key in values:
                values[key] = str(values[key])
        values["embeddings"] = values["embeddings"].astype(np.float32)
        return cls(**values)

    def select(self, mask: np.ndarray) -> EmbeddingIndex:
        """The rows where `mask` (bool `[N]`) is true (all per-row arrays, and the sampled thumbnails among them)."""
        mask = np.asarray(mask, bool)
        per_row = {
            k: (None if getattr(self, k) is None else getattr(self, k)[mask])
            for k in ("paths", "embeddings", "labels", "splits")
        }
        if self.thumbnail_rows is None:
            per_row["thumbnails"] = None if self.thumbnails is None else self.thumbnails[mask]
        else:
            kept = mask[self.thumbnail_rows]
            per_row["thumbnails"] = self.thumbnails[kept]
            per_row["thumbnail_rows"] = (np.cumsum(mask) - 1)[self.thumbnail_rows[kept]]
        return replace(self, **per_row)

    def thumbnail(self, row: int) -> np.ndarray | None:
        """uint8 `[T, T, 3]` of `row`, or None when the index has no thumbnail for it."""
        if self.thumbnails is None:
            return None
        if self.thumbnail_rows is None:
            return self.thumbnails[row]
        at = int(np.searchsorted(self.thumbnail_rows, row))  # thumbnail_rows are sorted
        return self.thumbnails[at] if at < len(self.thumbnail_rows) and self.thumbnail_rows[at] == row else None

    def class_of(self, row: int) -> str | None:
        if self.labels is None or self.labels[row] < 0:
            return None
        label = int(self.labels[row])
        if self.class_names is not None and label < len(self.class_names):
            return str(self.class_names[label])
        return str(label)


def _vectors_from_faiss(path: str, norms: np.ndarray, fingerprint: str, ann=None) -> np.ndarray:
    """float32 `[N, D]`: the unit rows of the faiss index beside `path` (or `ann`) times `norms` `[N]`;
    IndexFileError when that index has another row count or was built from another model's embeddings."""
    from serving.ann import ANN_FILE, AnnIndex

    folder = os.path.dirname(os.path.abspath(path))
    if ann is None:
        if not os.path.isfile(os.path.join(folder, ANN_FILE)):
            raise IndexFileError(f"{path} keeps its embeddings in {ANN_FILE} beside it, and {folder} has none")
        ann = AnnIndex.load(folder)
    if len(ann) != len(norms):
        raise IndexFileError(f"{ANN_FILE} beside {path} holds {len(ann)} rows but the table {len(norms)}")
    if fingerprint and ann.meta.model_fingerprint and fingerprint != ann.meta.model_fingerprint:
        raise IndexFileError(
            f"{ANN_FILE} beside {path} was built from model {ann.meta.model_fingerprint}, the table from {fingerprint}"
        )
    vectors = ann.vectors()
    vectors *= norms[:, None]
    return vectors


def nearest(embeddings: np.ndarray, queries: np.ndarray, k: int, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(row indices [Q, k], cosine similarities [Q, k]) of the k most similar rows, most similar first.

    Ties go to the lower row index, so results are deterministic. Raises IndexFileError when the
    embedding widths differ (an index built with another model)."""
    if embeddings.shape[1] != queries.shape[1]:
        raise IndexFileError(
            f"the index holds {embeddings.shape[1]}-d embeddings but the model gives "
            f"{queries.shape[1]}-d ones: was the index built with another model?"
        )
    return cosine_top_k(np.asarray(queries, np.float32), np.asarray(embeddings, np.float32), k, chunk)


def precision_at_k(neighbour_labels: np.ndarray, query_labels: np.ndarray) -> float:
    """Mean over queries of the share of their k neighbours that have the query's label."""
    if len(query_labels) == 0:
        raise ValueError("no queries")
    return float(np.mean(neighbour_labels == np.asarray(query_labels)[:, None]))
