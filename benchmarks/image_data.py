"""Image folders -> fixed-size uint8 arrays, with numpy and Pillow only (no TensorFlow).

Each JPEG is decoded and resized once; the result is cached as an .npz under a cache directory
outside the repository (``$SIMSIAM_TFX_CACHE`` or ``~/.cache/simsiam-tfx``), keyed on the file
list (names, sizes, mtimes) and the image size, so a second run starts in a second.
The train/eval split is the ExampleGen's hash split (``components.ingest.splits.split_of``).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from components.ingest.files import check_listing, list_image_folder
from components.ingest.splits import split_of
from serving.images import check_image_bytes, displayed_rgb

log = logging.getLogger(__name__)

_CACHE_VERSION = "4"  # bump when the decoding or resizing below changes


@dataclass(frozen=True)
class ImageSet:
    """Decoded images of one split: uint8 ``[N, T, T, 3]`` (T: the stored size), labels int64 ``[N]``."""

    images: np.ndarray
    labels: np.ndarray
    image_ids: list[str]

    def __len__(self) -> int:
        return len(self.image_ids)


@dataclass(frozen=True)
class FlowerData:
    train: ImageSet
    eval: ImageSet
    class_names: list[str]
    rejected: list[tuple[str, str]]  # (image_id, reason), as in the ingestion report

    def pixel_mean_std(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std in [0, 1] units over the train split (as the Transform's analyzer)."""
        x = self.train.images.reshape(-1, 3).astype(np.float64) / 255.0
        return x.mean(axis=0).tolist(), x.std(axis=0).tolist()


def default_cache_dir() -> Path:
    return Path(os.environ.get("SIMSIAM_TFX_CACHE", Path.home() / ".cache" / "simsiam-tfx"))


def list_images(data_dir: str | Path) -> tuple[list[str], list[int], list[str], list[tuple[str, str]]]:
    """(image_ids, labels, class_names, rejected) with the ExampleGen's listing rules
    (``components.ingest.files``): classes = sorted sub-folder names, label = index, image_id = path
    relative to ``data_dir`` with POSIX separators; rejected = [(image_id, reason)] (not image files)."""
    listing = list_image_folder(str(data_dir))  # raises DataError (a ValueError) on a bad folder
    check_listing(listing)
    labels = listing.labels
    ids = [image_id for image_id, _ in listing.files]
    rejected = [(image_id, problem.reason) for image_id, problem in listing.rejected]
    return ids, [labels[c] for _, c in listing.files], list(listing.classes), rejected


def select_subset(labels: list[int], max_images: int) -> list[int]:
    """Indices of at most ``max_images`` items, round-robin over the classes (deterministic)."""
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    queues = [by_class[c] for c in sorted(by_class)]
    chosen: list[int] = []
    depth = 0
    while len(chosen) < max_images and any(depth < len(q) for q in queues):
        chosen.extend(q[depth] for q in queues if depth < len(q))
        depth += 1
    return sorted(chosen[:max_images])


def decode_resize(source: str | Path | bytes, image_size: int) -> np.ndarray:
    """Decode one image (a path or the file's bytes) to RGB uint8 ``[T, T, 3]`` as the Transform does
    (components/transform.py): the whole photo as displayed (EXIF orientation, transparency on white:
    ``serving.images.displayed_rgb``) resized to a T x T square (bilinear, antialiased)."""
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
        # JPEG DCT scaling: decode directly at >= 2x the target size (much faster, same look).
        img.draft("RGB", (2 * image_size, 2 * image_size))
        rgb = displayed_rgb(img)
    return np.asarray(rgb.resize((image_size, image_size), Image.BILINEAR), dtype=np.uint8)


def _cache_key(root: Path, ids: list[str], image_size: int) -> str:
    h = hashlib.sha256(f"{_CACHE_VERSION}|{root.resolve()}|{image_size}".encode())
    for image_id in ids:
        st = (root / image_id).stat()
        h.update(f"|{image_id}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def _decode_all(root: Path, ids: list[str], image_size: int) -> tuple[np.ndarray, list[str]]:
    """(images uint8 [N, S, S, 3], reasons [N]): reason "" for a good image; the others are rejected
    by the ExampleGen's check (``check_image_bytes``) and left black."""

    def one(image_id: str) -> np.ndarray | str:
        data = (root / image_id).read_bytes()
        problem = check_image_bytes(data)
        return problem.reason if problem else decode_resize(data, image_size)

    images = np.zeros((len(ids), image_size, image_size, 3), np.uint8)
    reasons = [""] * len(ids)
    # Pillow releases the GIL while decoding and resizing, so threads use every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for i, out in enumerate(pool.map(one, ids)):
            if isinstance(out, str):
                reasons[i] = out
                log.warning("rejected %s: %s", ids[i], out)
            else:
                images[i] = out
    return images, reasons


def load_images(
    data_dir: str | Path,
    image_size: int,
    max_images: int | None = None,
    eval_percent: int = 15,
    cache_dir: str | Path | None = None,
) -> FlowerData:
    """All (or ``max_images``) images of ``data_dir``, decoded, resized and split train/eval."""
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8, got {image_size}")
    root = Path(data_dir)
    ids, labels, class_names, rejected = list_images(root)
    if max_images is not None:
        keep = select_subset(labels, max_images)
        ids, labels = [ids[i] for i in keep], [labels[i] for i in keep]
    if not ids:
        raise ValueError(f"no images under {root}")

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_file = cache / f"images-{image_size}px-{_cache_key(root, ids, image_size)}.npz"
    if cache_file.exists():
        with np.load(cache_file) as z:
            images, reasons = z["images"], z["reasons"].tolist()
        log.info("loaded %d images from %s", len(ids), cache_file)
    else:
        images, reasons = _decode_all(root, ids, image_size)
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(cache_file.stem + ".tmp.npz")
        np.savez(tmp, images=images, reasons=np.asarray(reasons, dtype=str))
        tmp.replace(cache_file)

    ok = np.asarray([not r for r in reasons])
    rejected += [(i, r) for i, r in zip(ids, reasons) if r]
    label_arr = np.asarray(labels, np.int64)
    splits = np.asarray([split_of(i, eval_percent) for i in ids])

    def subset(name: str) -> ImageSet:
        mask = (splits == name) & ok
        return ImageSet(images[mask], label_arr[mask], [i for i, m in zip(ids, mask) if m])

    return FlowerData(subset("train"), subset("eval"), class_names, rejected)
