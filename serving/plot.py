"""A picture of a query image and its nearest neighbours (matplotlib, Agg)."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from serving.images import displayed_rgb
from serving.index import EmbeddingIndex

THUMB = 160


def _thumbnail(path: str) -> np.ndarray | None:
    try:
        with Image.open(path) as image:
            image = displayed_rgb(image)  # as the model saw it: EXIF orientation, alpha over white
            image.thumbnail((THUMB, THUMB))
            return np.asarray(image)
    except (OSError, ValueError):
        return None


def _short(name: str, width: int = 22) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def neighbour_picture(index: EmbeddingIndex, row: int) -> np.ndarray | None:
    """The file when it exists here, else the thumbnail stored in the index, else None."""
    path = str(index.paths[row])
    if os.path.isfile(path) and (picture := _thumbnail(path)) is not None:
        return picture
    return index.thumbnail(row)


def plot_neighbours(query_path: str, index: EmbeddingIndex, rows: np.ndarray, sims: np.ndarray, out: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows) + 1, figsize=(2.2 * (len(rows) + 1), 2.6), squeeze=False)
    panels = [(_thumbnail(query_path), f"query\n{_short(os.path.basename(query_path))}")]
    for rank, (row, sim) in enumerate(zip(rows, sims), start=1):
        label = index.class_of(row) or _short(os.path.basename(str(index.paths[row])))
        panels.append((neighbour_picture(index, row), f"{rank}. {label}\ncos {sim:.3f}"))
    for ax, (picture, title) in zip(axes[0], panels):
        if picture is None:
            ax.text(0.5, 0.5, "image\nnot found", ha="center", va="center")
        else:
            ax.imshow(picture)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
