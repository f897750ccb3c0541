"""The cheap baseline features, against hand computations on tiny images."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest

from models.baselines import (
    cheap_baseline_scores,
    colour_histogram_features,
    random_filter_features,
    rgb_to_hsv,
    strongest_baseline,
)


def test_random_filters_match_an_explicit_convolution_loop():
    images = np.random.default_rng(3).uniform(size=(2, 5, 6, 3)).astype("float32")
    features = random_filter_features(images, filters=4, seed=7)
    weights = np.random.default_rng(7).standard_normal((3, 3, 3, 4)).astype("float32")
    for n, image in enumerate(images):
        z = (image - image.mean(axis=(0, 1))) / image.std(axis=(0, 1))  # each channel on its own
        for f in range(4):
            responses = [
                max(0.0, float(np.sum(z[y : y + 3, x : x + 3, :] * weights[:, :, :, f])))
                for y in range(3)
                for x in range(4)
            ]
            assert features[n, f] == pytest.approx(np.mean(responses), rel=1e-4, abs=1e-5)
        np.testing.assert_allclose(features[n, 4:], image.mean(axis=(0, 1)), rtol=1e-5)
    assert features.shape == (2, 7) and features.dtype == np.float32


def test_random_filters_are_seeded_and_independent_of_the_batch():
    images = np.random.default_rng(0).uniform(size=(300, 8, 8, 3))
    whole = random_filter_features(images)
    np.testing.assert_allclose(random_filter_features(images[250:]), whole[250:], rtol=1e-5)
    assert not np.allclose(random_filter_features(images[:5], seed=1), whole[:5])
    assert whole.shape == (300, 67)


def test_rgb_to_hsv_agrees_with_colorsys():
    rgb = np.random.default_rng(1).uniform(size=(200, 3))
    rgb[:3] = [[0.5, 0.5, 0.5], [0, 0, 0], [1, 0, 0]]  # grey, black, pure red
    expected = np.array([colorsys.rgb_to_hsv(*row) for row in rgb])
    np.testing.assert_allclose(rgb_to_hsv(rgb), expected, atol=1e-12)


def test_colour_histograms_of_a_red_and_blue_photo():
    image = np.zeros((1, 4, 4, 3), "float32")
    image[0, :, :2, 0] = 1.0  # left half pure red: hue 0, saturation 1, value 1
    image[0, :, 2:, 2] = 1.0  # right half pure blue: hue 2/3 -> bin 10 of 16
    features = colour_histogram_features(image)[0]
    assert features.shape == (246,)
    np.testing.assert_allclose(features[:6], [0.5, 0, 0.5, 0.5, 0, 0.5])
    histograms = features[6:].reshape(5, 3, 16)  # whole photo, then the 2x2 cells; H, S, V
    expected_hue = np.zeros((5, 16))
    expected_hue[0, [0, 10]] = 0.5
    expected_hue[[1, 3], 0] = 1.0  # top-left, bottom-left: red
    expected_hue[[2, 4], 10] = 1.0  # top-right, bottom-right: blue
    np.testing.assert_allclose(histograms[:, 0], expected_hue)
    np.testing.assert_allclose(histograms[:, 1:, 15], 1.0)  # saturation and value all in the top bin


@pytest.mark.parametrize("shape", [(4, 4, 3), (2, 4, 4, 1), (2, 2, 8, 3)])
def test_features_reject_a_bad_shape_with_the_shape(shape):
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        random_filter_features(np.zeros(shape))
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        colour_histogram_features(np.zeros(shape))


def test_cheap_baselines_score_a_colour_task_perfectly():
    """Two classes told apart by colour alone: reddish vs bluish noise photos, stored uint8."""
    rng = np.random.default_rng(0)

    def photos(n):
        labels = np.arange(n) % 2
        x = rng.uniform(0, 0.5, size=(n, 12, 12, 3))
        x[labels == 0, ..., 0] += 0.5
        x[labels == 1, ..., 2] += 0.5
        return (x * 255).astype("uint8"), labels

    (train_x, train_y), (eval_x, eval_y) = photos(40), photos(20)
    scores = cheap_baseline_scores(train_x, train_y, eval_x, eval_y, image_size=8, k=5)
    assert set(scores) == {"random_filters", "colour_histograms"}
    assert scores["colour_histograms"]["knn"] == 1.0 and scores["colour_histograms"]["linear_probe"] == 1.0
    assert scores["random_filters"]["linear_probe"] == 1.0  # the mean RGB alone separates them


def test_strongest_baseline_per_metric():
    scores = {
        "random_init": {"knn": 0.4, "linear_probe": 0.5},
        "random_filters": {"knn": 0.55, "linear_probe": 0.67},
        "colour_histograms": {"knn": 0.55, "linear_probe": 0.49},
        "missing": None,
    }
    assert strongest_baseline(scores, "knn") == ("random_filters", 0.55)  # a tie keeps the first
    assert strongest_baseline(scores, "linear_probe") == ("random_filters", 0.67)
    assert strongest_baseline({"random_init": {}}, "knn") is None
