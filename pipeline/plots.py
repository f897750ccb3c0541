"""PNG plots of a training run: metric curves and a 2-D map of embeddings (matplotlib, Agg)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def pca_2d(features: np.ndarray) -> np.ndarray:
    """Project ``[N, F]`` features on their first two principal components -> ``[N, 2]``.

    The features are l2-normalised first (the kNN and the loss use cosine geometry).
    """
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need features of shape [N >= 2, F], got {x.shape}")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    out = x @ vt[:2].T
    if out.shape[1] < 2:  # a single feature dimension: pad so the map still draws
        out = np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    return out


def plot_training_curves(history: dict[str, Sequence[float | None]], path: str | Path, title: str = "") -> Path:
    """One panel per metric, x = epoch (1-based). None/NaN entries (e.g. a metric logged only
    every N epochs) are skipped, so sparse metrics still draw as points joined by lines."""
    names = [k for k, v in history.items() if len(v) > 0]
    if not names:
        raise ValueError("history has no values to plot")
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    n_epochs = max(len(history[k]) for k in names)
    for ax, name in zip(axes.flat, names):
        y = np.array([np.nan if v is None else float(v) for v in history[name]])
        x = np.arange(1, len(y) + 1)
        keep = np.isfinite(y)
        ax.plot(x[keep], y[keep], marker="o" if keep.sum() <= 30 else None, markersize=3)
        ax.set_xlim(0.5, n_epochs + 0.5)  # the same epoch axis in every panel, sparse metrics included
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_embedding_map(
    features: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    title: str = "",
) -> Path:
    """Scatter of the first two principal components of ``features``, one colour per class."""
    labels = np.asarray(labels)
    if len(labels) != len(features):
        raise ValueError(f"{len(features)} feature rows but {len(labels)} labels")
    xy = pca_2d(features)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for c, name in enumerate(class_names):
        m = labels == c
        if m.any():
            ax.scatter(xy[m, 0], xy[m, 1], s=6, alpha=0.7, color=cmap(c % cmap.N), label=name)
    ax.set_xlabel("PC 1", fontsize=8)
    ax.set_ylabel("PC 2", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, markerscale=2, loc="best")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
