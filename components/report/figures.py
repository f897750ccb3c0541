"""PNG plots of a training run: metric curves and a 2-D map of embeddings (matplotlib, Agg)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from serving.atomic import atomic_file  # noqa: E402


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


def plot_training_curves(
    history: dict[str, Sequence[float | None]],
    path: str | Path,
    title: str = "",
    references: dict[str, list[tuple[str, float | None]]] | None = None,
) -> Path:
    """One panel per metric, x = epoch (1-based). None/NaN entries (e.g. a metric logged only
    every N epochs) are skipped, so sparse metrics still draw as points joined by lines.

    `references` {metric: [(label, value), ...]} draws a dashed horizontal line per entry on that
    metric's panel (None values are skipped): the numbers the curve must beat, e.g.
    `{"knn_accuracy": [("random init", 0.41), ("random filters", 0.61)]}`."""
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
        lines = [(label, value) for label, value in (references or {}).get(name, []) if value is not None]
        for (label, value), colour in zip(lines, ("tab:red", "tab:orange", "tab:purple", "tab:gray")):
            ax.axhline(float(value), color=colour, linestyle="--", linewidth=1, label=f"{label} {value:.3f}")
        if lines:
            ax.legend(fontsize=7, loc="best")
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
    _scatter_by_class(ax, xy, np.asarray(labels), class_names, size=6, alpha=0.7)
    ax.set_xlabel("PC 1", fontsize=8)
    ax.set_ylabel("PC 2", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, markerscale=2, loc="best")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _scatter_by_class(
    ax, xy: np.ndarray, labels: np.ndarray, class_names: Sequence[str], size: float, alpha: float
) -> None:
    """Points ``[N, 2]`` coloured by class; unlabelled ones (label -1 or unknown) in grey."""
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for c, name in enumerate(class_names):
        m = labels == c
        if m.any():
            ax.scatter(xy[m, 0], xy[m, 1], s=size, alpha=alpha, color=cmap(c % cmap.N), label=name)
    unlabeled = (labels < 0) | (labels >= len(class_names))
    if unlabeled.any():
        ax.scatter(xy[unlabeled, 0], xy[unlabeled, 1], s=size, alpha=alpha * 0.7, color="grey", label="unlabelled")


def tsne_2d(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """t-SNE of l2-normalised ``[N, F]`` features -> ``[N, 2]`` (scikit-learn's ``TSNE``, cosine metric).

    t-SNE keeps who is near whom (van der Maaten & Hinton 2008), which a linear projection such as PCA
    loses when classes differ in many directions at once. Perplexity is scikit-learn's default 30,
    lowered to (N - 1) / 3 for small N (it must stay below N). Raises ValueError for N < 4."""
    from sklearn.manifold import TSNE

    x = np.asarray(features, np.float64)
    if x.ndim != 2 or x.shape[0] < 4:
        raise ValueError(f"t-SNE needs features of shape [N >= 4, F], got {x.shape}")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    perplexity = min(30.0, (x.shape[0] - 1) / 3)
    return TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="pca", random_state=seed).fit_transform(x)


def plot_embedding_maps(
    maps: Sequence[tuple[str, np.ndarray]],
    labels: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
) -> Path:
    """Side-by-side t-SNE maps of the same images, one panel per (title, ``[N, F]`` features), coloured by class
    (unlabelled images, label -1, in grey)."""
    labels = np.asarray(labels)
    fig, axes = plt.subplots(1, len(maps), figsize=(5 * len(maps), 4.6), squeeze=False)
    for ax, (title, features) in zip(axes.flat, maps):
        if len(features) != len(labels):
            raise ValueError(f"{title}: {len(features)} feature rows but {len(labels)} labels")
        _scatter_by_class(ax, tsne_2d(features), labels, class_names, size=7, alpha=0.75)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    axes.flat[0].legend(fontsize=7, markerscale=2, loc="best")
    fig.tight_layout()
    return _save(fig, path)


def plot_neighbour_grids(
    panels: Sequence[tuple[str, np.ndarray, np.ndarray]],
    queries: np.ndarray,
    thumbnails: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    tile: int = 96,
    image_ids: Sequence[str] | None = None,
) -> Path:
    """Query images and their nearest neighbours, one block of columns per encoder, side by side.

    `queries`: int ``[Q]`` rows of `thumbnails` (uint8 ``[N, H, W, 3]``) and `labels` (int ``[N]``).
    Each panel is (title, neighbour rows int ``[Q, K]``, cosine similarities float ``[Q, K]``). Every tile
    (`tile` px) is captioned with its class (an unlabelled one, label -1, with its file name from
    `image_ids` when given); a neighbour's caption adds its similarity, green when its class is the
    query's, red otherwise, grey when either is unlabelled. Drawn with Pillow (fast: one
    paste per tile); the format follows `path`'s
    suffix (.png, or .jpg: far smaller for photos)."""
    from matplotlib import font_manager
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(font_manager.findfont("DejaVu Sans"), 11)
    bold = ImageFont.truetype(
        font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans", weight="bold")), 13
    )
    k, caption, gap, head = panels[0][1].shape[1], 16, 4, 24
    panel_w = (k + 1) * (tile + gap) + 12  # a wider gap after the query column
    margin = 10  # captions a little wider than a tile stay inside the image
    canvas = Image.new(
        "RGB", (len(panels) * (panel_w + 20) + margin, head + len(queries) * (tile + caption + gap)), "white"
    )
    draw = ImageDraw.Draw(canvas)

    def name(row: int) -> str:
        if 0 <= labels[row] < len(class_names):
            return class_names[labels[row]]
        if image_ids is None:
            return "unlabelled"
        file_name = str(image_ids[row]).rsplit("/", 1)[-1]
        return file_name if len(file_name) <= 14 else file_name[:6] + "..." + file_name[-5:]

    for p, (title, rows, sims) in enumerate(panels):
        x0 = margin + p * (panel_w + 20)
        draw.text((x0 + panel_w // 2, 4), title, fill="black", font=bold, anchor="ma")
        for q, query in enumerate(queries):
            y = head + q * (tile + caption + gap)
            tiles = [(int(query), None)] + [(int(r), float(s)) for r, s in zip(rows[q], sims[q])]
            for j, (row, sim) in enumerate(tiles):
                x = x0 + j * (tile + gap) + (12 if j else 0)
                image = Image.fromarray(np.asarray(thumbnails[row], np.uint8)).resize((tile, tile), Image.BICUBIC)
                canvas.paste(image, (x, y + caption))
                if sim is None:
                    text, colour = f"query: {name(row)}", "black"
                else:
                    text = f"{name(row)} {sim:.2f}"
                    colour = (
                        (120, 120, 120)
                        if min(labels[row], labels[query]) < 0
                        else (19, 115, 51)
                        if labels[row] == labels[query]
                        else (179, 38, 30)
                    )
                draw.text((x + tile // 2, y + 1), text, fill=colour, font=font, anchor="ma")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, quality=88) if path.suffix.lower() in (".jpg", ".jpeg") else canvas.save(path)
    return path


def _save(fig: plt.Figure, path: str | Path) -> Path:
    """Writes the figure whole or not at all (serving/atomic.py), in the format of the file name's suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_file(path, "wb") as file:
            fig.savefig(file, dpi=90, format=path.suffix.lstrip(".").lower() or "png")
    finally:
        plt.close(fig)
    return path
