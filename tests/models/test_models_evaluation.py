"""kNN and linear-probe evaluation (numpy only)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.evaluation import frozen_feature_scores, knn_accuracy, knn_predict


def linear_probe_accuracy(train_x, train_y, test_x, test_y) -> float:
    return frozen_feature_scores(train_x, train_y, test_x, test_y)["linear_probe"]


def _unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def test_knn_weighted_vote_equals_hand_computation():
    # Test point at 0 deg. Neighbours: class 0 at +-60 deg (cos 0.5), class 1 at 8 deg (cos 0.99), far class 2.
    train = np.array([_unit(60), _unit(-60), _unit(8), _unit(180)]) * [[1.0], [3.0], [0.5], [2.0]]
    labels = np.array([0, 0, 1, 2])
    test = np.array([_unit(0)])
    # k=3, T=0.1: class 0 gets 2 * exp(5) = 297, class 1 gets exp(9.9) = 19930 -> class 1 (majority says 0).
    assert knn_predict(train, labels, test, k=3, temperature=0.1).tolist() == [1]
    # A high temperature flattens the weights to a majority vote: 2 * e^0.005 > e^0.0099.
    assert knn_predict(train, labels, test, k=3, temperature=100.0).tolist() == [0]
    assert knn_accuracy(train, labels, test, [1], k=3) == 1.0
    assert knn_predict(train, labels, test, k=50).tolist() == [1]  # k larger than the train set


def _clusters(rng, classes: int, dim: int, spread: float, n_train: int, n_test: int):
    """Gaussian clusters: unit noise around `classes` centres drawn with scale `spread`."""
    centers = rng.normal(size=(classes, dim)) * spread
    y_train, y_test = rng.integers(0, classes, n_train), rng.integers(0, classes, n_test)
    return (
        centers[y_train] + rng.normal(size=(n_train, dim)),
        y_train,
        centers[y_test] + rng.normal(size=(n_test, dim)),
        y_test,
        centers,
    )


def test_knn_accuracy_on_clusters_and_chance():
    rng = np.random.default_rng(0)
    x_train, y_train, x_test, y_test, _ = _clusters(rng, 4, 16, 5.0, 400, 200)
    assert knn_accuracy(x_train, y_train, x_test, y_test) == 1.0
    assert knn_accuracy(x_train, rng.permutation(y_train), x_test, y_test) < 0.45


def test_linear_probe_separable_deterministic_and_close_to_sklearn():
    rng = np.random.default_rng(1)
    x_train, y_train, x_test, y_test, centers = _clusters(rng, 3, 8, 1.2, 600, 300)
    x_train[:, 0] *= 1000.0  # standardisation makes scales irrelevant
    x_test[:, 0] *= 1000.0
    acc = linear_probe_accuracy(x_train, y_train, x_test, y_test)
    assert acc == linear_probe_accuracy(x_train, y_train, x_test, y_test)
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_train)
    reference = LogisticRegression(max_iter=2000).fit(scaler.transform(x_train), y_train)
    assert acc == pytest.approx(reference.score(scaler.transform(x_test), y_test), abs=0.02)
    far = centers * 10
    assert (
        linear_probe_accuracy(
            far[y_train] + rng.normal(size=(600, 8)), y_train, far[y_test] + rng.normal(size=(300, 8)), y_test
        )
        == 1.0
    )


def test_evaluation_rejects_bad_inputs():
    x, y = np.zeros((4, 3)), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="differ in length"):
        knn_accuracy(x, y[:3], x, y)
    with pytest.raises(ValueError, match="2-D"):
        linear_probe_accuracy(x, y, np.zeros((4, 2)), y)
    with pytest.raises(ValueError, match="non-negative"):
        knn_accuracy(x, -y, x, y)


def test_fit_linear_probe_solves_its_regularised_objective():
    """At the returned weights the gradient of mean cross-entropy + wd/2 ||W||^2 (bias undecayed) vanishes."""
    from models.evaluation import fit_linear_probe

    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 300)
    x = rng.normal(size=(3, 5))[y] + rng.normal(size=(300, 5))
    wd = 1e-2
    probe = fit_linear_probe(x, y, weight_decay=wd, iterations=3000)
    xs = (x - probe.mean) / probe.std
    np.testing.assert_allclose(probe.mean, x.mean(axis=0))
    logits = probe.logits(x)
    np.testing.assert_allclose(logits, xs @ probe.weights + probe.bias)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    residual = p - np.eye(3)[y]
    grad_w = xs.T @ residual / len(x) + wd * probe.weights
    grad_b = residual.mean(axis=0)
    assert np.abs(grad_w).max() < 1e-5 and np.abs(grad_b).max() < 1e-5
    assert probe.predict(x).dtype == np.int64
    with pytest.raises(ValueError, match="num_classes"):
        fit_linear_probe(x, y, num_classes=2)


def test_probe_weight_decay_is_chosen_by_cross_validation_on_train_features_only():
    """Few noisy samples in many dimensions: the weakest decay overfits, CV on the train split picks a
    stronger one, and that generalises better to held-out data it never saw."""
    from models.evaluation import PROBE_WEIGHT_DECAYS, fit_linear_probe

    x_train, y_train, x_test, y_test, _ = _clusters(np.random.default_rng(3), 3, 200, 0.15, 150, 600)
    probe = fit_linear_probe(x_train, y_train, num_classes=3, iterations=300)
    assert set(probe.cv_accuracy) == set(PROBE_WEIGHT_DECAYS)
    assert probe.weight_decay == max(PROBE_WEIGHT_DECAYS, key=lambda wd: (probe.cv_accuracy[wd], wd))
    assert probe.weight_decay > min(PROBE_WEIGHT_DECAYS)
    weakest = fit_linear_probe(x_train, y_train, num_classes=3, weight_decay=min(PROBE_WEIGHT_DECAYS), iterations=300)
    assert weakest.cv_accuracy is None and weakest.weight_decay == min(PROBE_WEIGHT_DECAYS)
    assert np.mean(probe.predict(x_test) == y_test) > np.mean(weakest.predict(x_test) == y_test)
    again = fit_linear_probe(x_train, y_train, num_classes=3, iterations=300)
    np.testing.assert_array_equal(again.weights, probe.weights)  # deterministic
