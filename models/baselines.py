"""Cheap image features that need no training: the baselines a learned embedding has to beat.

A randomly initialised encoder is not the only reference a user compares with. On Flowers, colour and
local texture statistics alone already tell many classes apart, so the gain SimSiam reports is
measured against the strongest of three untrained features, each scored with the same linear probe
and kNN (`models.evaluation.frozen_feature_scores`) on the same evaluation view (`augment.eval_view`):

- `random_init`: the SimSiam encoder at its random initialisation (scored by the caller);
- `random_filters`: 64 random 3x3 filters + mean RGB, the cheapest feature a CNN-minded user tries
  (Jarrett et al., "What is the best multi-stage architecture for object recognition?", ICCV 2009,
  and Saxe et al., "On random weights and unsupervised feature learning", ICML 2011: random
  convolutional filters with rectification and pooling already make a usable feature);
- `colour_histograms`: RGB mean/std and HSV histograms of the photo and of its 2x2 grid, the
  classic colour descriptor (Swain & Ballard, "Color indexing", IJCV 1991).

Both features are numpy only and deterministic on a given machine (the filters come from a seeded
generator); another CPU's float rounding may move them in the last digits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

RANDOM_FILTERS = 64
RANDOM_FILTER_SEED = 0
HISTOGRAM_BINS = 16
CHEAP_BASELINES = ("random_filters", "colour_histograms")
# What a gate may compare a model with (components/evaluate/baseline_gate.py): the strongest of random
# init and the cheap baselines, random init alone, or nothing.
GATE_AGAINST = ("strongest", "random_init", "none")
_BLOCK_PIXELS = 1 << 20  # pixels per block of images: bounds the working memory (~0.7 GB) at any size


def _block(height: int, width: int) -> int:
    """Images per block, so that a block holds about _BLOCK_PIXELS pixels."""
    return max(1, _BLOCK_PIXELS // (height * width))


def _check_images(images) -> np.ndarray:
    x = np.asarray(images, np.float32)
    if x.ndim != 4 or x.shape[-1] != 3 or x.shape[1] < 3 or x.shape[2] < 3:
        raise ValueError(f"need images [N, H, W, 3] with H, W >= 3, got shape {x.shape}")
    return x


def random_filter_features(images, filters: int = RANDOM_FILTERS, seed: int = RANDOM_FILTER_SEED) -> np.ndarray:
    """`filters` random 3x3 filters (ReLU, global mean) on the standardised photo, then its mean RGB.

    `images`: float `[N, H, W, 3]` in [0, 1] (the evaluation view). Each channel of each photo is
    standardised on its own (zero mean, unit std over its pixels), the photo convolved without padding
    with `filters` filters `[3, 3, 3]` drawn i.i.d. from N(0, 1) by `numpy.random.default_rng(seed)`
    (no bias), rectified and averaged over positions; the photo's mean R, G, B (before standardising)
    is appended, since standardising removed it. Why per channel: on the Flowers eval split it scores
    the same linear probe as standardising all channels together and a clearly higher kNN
    (docs/quality.md), and the baseline to beat should be the stronger one.
    Returns float32 `[N, filters + 3]`. Raises ValueError on another shape.
    """
    x = _check_images(images)
    weights = np.random.default_rng(seed).standard_normal((3, 3, 3, filters)).astype(np.float32)
    kernel = weights.reshape(27, filters)  # rows in (dy, dx, channel) order, as the patches below
    out = np.empty((len(x), filters + 3), np.float32)
    step = _block(x.shape[1], x.shape[2])
    for start in range(0, len(x), step):
        block = x[start : start + step]
        mean = block.mean(axis=(1, 2), keepdims=True)
        std = np.maximum(block.std(axis=(1, 2), keepdims=True), 1e-6)
        z = (block - mean) / std
        h, w = z.shape[1] - 2, z.shape[2] - 2
        patches = np.concatenate([z[:, dy : dy + h, dx : dx + w, :] for dy in range(3) for dx in range(3)], axis=-1)
        responses = patches.reshape(-1, 27) @ kernel
        np.maximum(responses, 0.0, out=responses)
        responses = responses.reshape(len(block), h * w, filters)
        out[start : start + len(block), :filters] = responses.mean(axis=1)
        out[start : start + len(block), filters:] = block.mean(axis=(1, 2))
    return out


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """float `[..., 3]` RGB in [0, 1] -> HSV in [0, 1] (hue as a fraction of the circle; grey has hue 0
    and saturation 0), the definition of Python's `colorsys.rgb_to_hsv`, vectorised."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(axis=-1)
    chroma = v - rgb.min(axis=-1)
    safe = np.where(chroma > 0, chroma, 1.0)
    s = np.where(v > 0, chroma / np.where(v > 0, v, 1.0), 0.0)
    h = np.where(v == r, (g - b) / safe, np.where(v == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    h = np.where(chroma > 0, (h / 6.0) % 1.0, 0.0)
    return np.stack([h, s, v], axis=-1)


def _hsv_histograms(hsv: np.ndarray, bins: int) -> np.ndarray:
    """float `[N, h, w, 3]` HSV -> `[N, 3 * bins]`: per channel, the share of pixels in each of `bins`
    equal bins of [0, 1] (1.0 falls in the last bin)."""
    index = np.minimum((hsv * bins).astype(np.int64), bins - 1).reshape(len(hsv), -1, 3)
    counts = np.zeros((len(hsv), 3, bins), np.float32)
    for channel in range(3):
        np.add.at(counts[:, channel], (np.arange(len(hsv))[:, None], index[:, :, channel]), 1.0)
    return (counts / index.shape[1]).reshape(len(hsv), 3 * bins)


def colour_histogram_features(images, bins: int = HISTOGRAM_BINS) -> np.ndarray:
    """RGB mean and std of the photo, then HSV histograms of the photo and of each cell of its 2x2 grid.

    `images`: float `[N, H, W, 3]` in [0, 1]. Layout: `[mean R, G, B, std R, G, B]` (std over pixels,
    ddof 0), then for the whole photo and the top-left, top-right, bottom-left, bottom-right cells
    (split at H // 2, W // 2) the H, S and V histograms (`bins` equal bins of [0, 1], shares summing to
    1 per channel). Returns float32 `[N, 6 + 15 * bins]` (246 for 16 bins).
    """
    x = _check_images(images)
    h2, w2 = x.shape[1] // 2, x.shape[2] // 2
    step = _block(x.shape[1], x.shape[2])
    rows = []
    for start in range(0, len(x), step):
        block = x[start : start + step]
        hsv = rgb_to_hsv(block)
        regions = [hsv, hsv[:, :h2, :w2], hsv[:, :h2, w2:], hsv[:, h2:, :w2], hsv[:, h2:, w2:]]
        parts = [block.mean(axis=(1, 2)), block.std(axis=(1, 2))] + [_hsv_histograms(r, bins) for r in regions]
        rows.append(np.concatenate(parts, axis=1).astype(np.float32))
    return np.concatenate(rows)


FEATURES = {"random_filters": random_filter_features, "colour_histograms": colour_histogram_features}


def cheap_baseline_scores(
    train_images, train_labels, eval_images, eval_labels, image_size: int, k: int = 20
) -> dict[str, dict[str, float]]:
    """Each cheap feature scored as the encoder is: `{name: frozen_feature_scores(...)}` for the names
    in CHEAP_BASELINES.

    `train_images`, `eval_images`: stored uint8 `[N, T, T, 3]` (or float in [0, 1]); each goes through
    `eval_view` at `image_size` first, the view the encoder is scored on. Labels int `[N]`, >= 0.
    """
    from models.augment import eval_view  # Keras only here: the features themselves are numpy
    from models.evaluation import frozen_feature_scores

    def features(images) -> dict[str, np.ndarray]:
        """Each feature of `images`, computed block by block: only the small feature rows are kept."""
        import keras

        images = np.asarray(images)
        step = _block(image_size, image_size)
        blocks = []
        for i in range(0, len(images), step):
            view = keras.ops.convert_to_numpy(eval_view(images[i : i + step], image_size))
            blocks.append({name: FEATURES[name](view) for name in CHEAP_BASELINES})
        return {name: np.concatenate([b[name] for b in blocks]) for name in CHEAP_BASELINES}

    train_f, eval_f = features(train_images), features(eval_images)
    return {
        name: frozen_feature_scores(train_f[name], train_labels, eval_f[name], eval_labels, k=k)
        for name in CHEAP_BASELINES
    }


def strongest_baseline(scores: dict[str, dict[str, Any]], metric: str) -> tuple[str, float] | None:
    """The baseline with the highest `metric` ("linear_probe" or "knn") among `scores`
    `{name: {metric: accuracy}}` (random init and the cheap features): `(name, accuracy)`, or None
    when none has it. Ties go to the first name in `scores`' order."""
    best = None
    for name, values in scores.items():
        value = (values or {}).get(metric)
        if value is not None and (best is None or value > best[1]):
            best = (name, float(value))
    return best
