"""SimSiamAugmentation: shapes, ranges, randomness per image and per view, determinism, exact parts."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from models.augment import SimSiamAugmentation

OFF = {"flip_prob": 0.0, "jitter_prob": 0.0, "grayscale_prob": 0.0, "blur_prob": 0.0}
NO_CROP = {"crop_scale": (1.0, 1.0), "crop_ratio": (1.0, 1.0)}


def _images(batch=4, size=24, seed=0) -> np.ndarray:
    """Smooth colourful float images in [0, 1]."""
    rng = np.random.default_rng(seed)
    low = rng.uniform(size=(batch, 4, 4, 3))
    return np.repeat(np.repeat(low, size // 4, axis=1), size // 4, axis=2).astype("float32")


def _run(layer, x) -> np.ndarray:
    return keras.ops.convert_to_numpy(layer(x))


def test_output_shape_dtype_and_range():
    x = _images(batch=6, size=24)
    out = _run(SimSiamAugmentation(16, seed=0), x)
    assert out.shape == (6, 16, 16, 3) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_two_views_of_one_image_differ():
    layer = SimSiamAugmentation(24, seed=0)
    x = _images()
    view1, view2 = _run(layer, x), _run(layer, x)
    assert all(np.abs(view1[i] - view2[i]).mean() > 1e-3 for i in range(len(x)))


def test_parameters_differ_per_image_within_a_batch():
    x = np.repeat(_images(batch=1), 8, axis=0)  # the same image 8 times
    out = _run(SimSiamAugmentation(24, seed=1), x)
    distances = [np.abs(out[i] - out[j]).mean() for i in range(8) for j in range(i + 1, 8)]
    assert min(distances) > 1e-3


def test_same_seed_same_output_and_different_seed_different_output():
    x = _images()
    a, b, c = (_run(SimSiamAugmentation(24, seed=s), x) for s in (7, 7, 8))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 1e-3


def test_all_off_is_the_identity():
    x = _images()
    np.testing.assert_allclose(_run(SimSiamAugmentation(24, **OFF, **NO_CROP, seed=0), x), x, atol=1e-5)


def test_flip_only_mirrors_horizontally():
    x = _images()
    out = _run(SimSiamAugmentation(24, **{**OFF, "flip_prob": 1.0}, **NO_CROP, seed=0), x)
    np.testing.assert_allclose(out, x[:, :, ::-1], atol=1e-5)


def test_crop_zooms_into_a_sub_window():
    # A horizontal ramp: the crop's columns must show a contiguous, narrower, increasing part of it.
    ramp = np.tile(np.linspace(0, 1, 32, dtype="float32")[None, None, :, None], (8, 32, 1, 3))
    out = _run(SimSiamAugmentation(32, crop_scale=(0.2, 0.5), **OFF, seed=3), ramp)
    rows = out[:, 16, :, 0]
    assert np.all(np.diff(rows, axis=1) >= -1e-6)
    spans = rows[:, -1] - rows[:, 0]
    assert np.all(spans < 0.95) and np.all(spans > 0.2)  # width fraction lies in sqrt(0.2 * 3/4)..sqrt(0.5 * 4/3)


def test_grayscale_only_gives_equal_channels_with_luma_weights():
    x = _images()
    out = _run(SimSiamAugmentation(24, **{**OFF, "grayscale_prob": 1.0}, **NO_CROP, seed=0), x)
    luma = x @ np.array([0.299, 0.587, 0.114], "float32")
    for c in range(3):
        np.testing.assert_allclose(out[..., c], luma, atol=1e-5)


def test_brightness_scales_each_image_by_one_factor_in_range():
    x = _images(batch=16) * 0.5 + 0.1  # stays below 1 after a x1.4 factor
    layer = SimSiamAugmentation(
        24, **{**OFF, "jitter_prob": 1.0}, contrast=0.0, saturation=0.0, hue=0.0, **NO_CROP, seed=0
    )
    ratio = _run(layer, x) / x
    per_image = ratio.reshape(16, -1)
    np.testing.assert_allclose(per_image, np.broadcast_to(per_image[:, :1], per_image.shape), rtol=1e-4)
    assert per_image.min() >= 0.6 - 1e-4 and per_image.max() <= 1.4 + 1e-4
    assert per_image[:, 0].std() > 0.05


def test_blur_keeps_constants_and_smooths_edges():
    flat = np.full((4, 24, 24, 3), 0.3, "float32")
    blur = SimSiamAugmentation(
        24, **{**OFF, "blur_prob": 1.0}, blur_sigma=(1.0, 2.0), blur_reference_size=24, **NO_CROP, seed=0
    )
    np.testing.assert_allclose(_run(blur, flat), flat, atol=1e-5)
    checker = (np.indices((24, 24)).sum(axis=0) % 2).astype("float32")
    checker = np.repeat(checker[None, :, :, None], 3, axis=-1).repeat(4, axis=0)
    out = _run(blur, checker)
    assert out.std() < 0.3 * checker.std()
    np.testing.assert_allclose(out.mean(), checker.mean(), atol=0.02)


def test_rejects_bad_parameters():
    with pytest.raises(ValueError):
        SimSiamAugmentation(16, crop_scale=(0.5, 0.2))
    with pytest.raises(ValueError):
        SimSiamAugmentation(16, blur_prob=1.5)


# --- colour jitter in a random order per image (torchvision's ColorJitter draws randperm(4) per call) ----


def _jitter_by_hand(x: np.ndarray, factors: tuple[float, float, float], order: list[int]) -> np.ndarray:
    """numpy reference: brightness (0), contrast (1), saturation (2) applied in `order`."""
    luma = np.array([0.299, 0.587, 0.114])
    for op in order:
        if op == 0:
            x = np.clip(x * factors[0], 0, 1)
        elif op == 1:
            mean = (x @ luma).mean()
            x = np.clip((x - mean) * factors[1] + mean, 0, 1)
        elif op == 2:
            gray = (x @ luma)[..., None]
            x = np.clip((x - gray) * factors[2] + gray, 0, 1)
    return x


def test_jitter_order_differs_between_images_and_matches_a_hand_computation():
    # hue=0 leaves hue out, so the order among brightness/contrast/saturation is checked against numpy.
    layer = SimSiamAugmentation(24, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.0, seed=0)
    x = np.repeat(_images(batch=1, seed=5), 2, axis=0).astype("float64")
    # Same factor draws for both images (u -> factor 1 - s + 2 s u): brightness 1.3, contrast 0.7,
    # saturation 1.38; opposite order keys: image 0 gets (b, c, s, h), image 1 gets (h, s, c, b).
    u = np.array([[0.875, 0.125, 0.975, 0.5, 0.1, 0.2, 0.3, 0.4],
                  [0.875, 0.125, 0.975, 0.5, 0.4, 0.3, 0.2, 0.1]], "float32")  # fmt: skip
    order = keras.ops.convert_to_numpy(layer.jitter_order(u[:, 4:]))
    assert order.tolist() == [[0, 1, 2, 3], [3, 2, 1, 0]]
    out = keras.ops.convert_to_numpy(layer._color_jitter(keras.ops.convert_to_tensor(x, "float32"), u))
    factors = (1.3, 0.7, 1.38)
    np.testing.assert_allclose(out[0], _jitter_by_hand(x[0], factors, [0, 1, 2]), atol=1e-5)
    np.testing.assert_allclose(out[1], _jitter_by_hand(x[1], factors, [2, 1, 0]), atol=1e-5)
    assert np.abs(out[0] - out[1]).max() > 0.02  # the order really changes the picture


def test_jitter_orders_drawn_in_one_batch_cover_many_permutations():
    layer = SimSiamAugmentation(8, seed=0)
    keys = keras.random.uniform((512, 4), seed=1)
    orders = keras.ops.convert_to_numpy(layer.jitter_order(keys))
    assert all(sorted(row) == [0, 1, 2, 3] for row in orders.tolist())
    assert len({tuple(row) for row in orders.tolist()}) == 24  # every one of the 4! orders occurs


# --- the stored image is cropped whole; one deterministic evaluation view ---------------------------


def _coordinates(size: int, batch: int) -> np.ndarray:
    """Channel 0 = column / (size - 1), channel 1 = row / (size - 1): a crop's values say where it was cut."""
    grid = np.linspace(0.0, 1.0, size, dtype="float32")
    image = np.stack([np.tile(grid[None, :], (size, 1)), np.tile(grid[:, None], (1, size)),
                      np.zeros((size, size), "float32")], axis=-1)  # fmt: skip
    return np.repeat(image[None], batch, axis=0)


def test_crops_of_a_larger_stored_image_reach_every_edge_at_the_training_size():
    stored = _coordinates(40, 256)  # stored at 40 px, trained at 32 px
    out = _run(SimSiamAugmentation(32, **OFF, seed=0), stored)
    assert out.shape == (256, 32, 32, 3)
    cols, rows = out[..., 0], out[..., 1]
    # Over 256 crops, some touch the left, right, top and bottom border of the stored photo.
    assert cols.min() < 0.02 and cols.max() > 0.98 and rows.min() < 0.02 and rows.max() > 0.98
    # Crop areas cover scale (0.2, 1.0): the smallest crops span about sqrt(0.2) of the side, the largest all of it.
    spans = cols[:, 16, -1] - cols[:, 16, 0]
    assert spans.min() < 0.5 and spans.max() > 0.95


def test_eval_view_is_the_whole_image_resampled_and_identity_at_the_same_size():
    from models.augment import eval_view

    stored = _coordinates(40, 2)
    view = keras.ops.convert_to_numpy(eval_view(stored, 32))
    assert view.shape == (2, 32, 32, 3) and view.dtype == np.float32
    # The whole image: the first and last columns of the view sit at the stored image's borders.
    np.testing.assert_allclose(view[0, 0, [0, -1], 0], [0.0, 1.0], atol=0.03)
    np.testing.assert_allclose(view[0, [0, -1], 0, 1], [0.0, 1.0], atol=0.03)
    # ... and it equals an antialiased bilinear resize (TensorFlow's, with antialias) within rounding.
    tf = pytest.importorskip("tensorflow")
    reference = tf.image.resize(stored, (32, 32), method="bilinear", antialias=True).numpy()
    np.testing.assert_allclose(view, reference, atol=0.02)
    u8 = (stored * 255).round().astype("uint8")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(eval_view(u8, 40)), u8 / 255.0, atol=1e-6)
    # The view of a crop-free, flip-free augmentation is the evaluation view: one resampling code.
    plain = SimSiamAugmentation(32, **OFF, **NO_CROP, seed=0)
    np.testing.assert_allclose(_run(plain, stored), view, atol=1e-5)
