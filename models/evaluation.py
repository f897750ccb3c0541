"""Frozen-feature evaluation: weighted kNN and a linear probe, numpy in, float out."""

from __future__ import annotations

import numpy as np


def _check(train_x, train_y, test_x, test_y) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    train_x, test_x = np.asarray(train_x, np.float64), np.asarray(test_x, np.float64)
    train_y, test_y = np.asarray(train_y).astype(np.int64), np.asarray(test_y).astype(np.int64)
    if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"need 2-D features of equal width, got {train_x.shape} and {test_x.shape}")
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise ValueError("features and labels differ in length")
    if len(train_x) == 0 or len(test_x) == 0:
        raise ValueError("empty train or test set")
    if train_y.min() < 0 or test_y.min() < 0:
        raise ValueError("labels must be non-negative class indices")
    return train_x, train_y, test_x, test_y


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn_predict(train_x, train_y, test_x, k: int = 20, temperature: float = 0.1, chunk: int = 1024) -> np.ndarray:
    """Cosine kNN with the InstDisc / SimSiam vote: each of the k neighbours adds exp(sim / T) to its class."""
    train_x, train_y = _l2_normalize(np.asarray(train_x, np.float64)), np.asarray(train_y, np.int64)
    test_x = _l2_normalize(np.asarray(test_x, np.float64))
    k = min(k, len(train_x))
    num_classes = int(train_y.max()) + 1
    predictions = []
    for start in range(0, len(test_x), chunk):
        sims = test_x[start : start + chunk] @ train_x.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        weights = np.exp(np.take_along_axis(sims, top, axis=1) / temperature)
        votes = np.zeros((len(sims), num_classes))
        np.add.at(votes, (np.arange(len(sims))[:, None], train_y[top]), weights)
        predictions.append(votes.argmax(axis=1))
    return np.concatenate(predictions)


def knn_accuracy(train_x, train_y, test_x, test_y, k: int = 20, temperature: float = 0.1) -> float:
    train_x, train_y, test_x, test_y = _check(train_x, train_y, test_x, test_y)
    return float(np.mean(knn_predict(train_x, train_y, test_x, k, temperature) == test_y))


def linear_probe_accuracy(
    train_x, train_y, test_x, test_y, epochs: int = 1000, weight_decay: float = 1e-4
) -> float:
    """Multinomial logistic regression on standardised features (train statistics), test accuracy.

    Full-batch Nesterov-accelerated gradient descent with step 1/L on the convex, L2-regularised
    cross-entropy: deterministic (zero init, no sampling), so no seed is needed.
    """
    train_x, train_y, test_x, test_y = _check(train_x, train_y, test_x, test_y)
    mean, std = train_x.mean(axis=0), train_x.std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)
    xs = np.hstack([(train_x - mean) / std, np.ones((len(train_x), 1))])
    xt = np.hstack([(test_x - mean) / std, np.ones((len(test_x), 1))])
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    targets = np.eye(num_classes)[train_y]
    n = len(xs)
    # Softmax cross-entropy is (1/2) ||X||_2^2 / n smooth at most; the L2 term adds weight_decay.
    step = 1.0 / (0.5 * np.linalg.norm(xs, 2) ** 2 / n + weight_decay)
    w = w_prev = np.zeros((xs.shape[1], num_classes))
    for t in range(1, epochs + 1):
        v = w + (t - 2) / (t + 1) * (w - w_prev) if t > 1 else w
        logits = xs @ v
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        grad = xs.T @ (probs - targets) / n + weight_decay * v
        w_prev, w = w, v - step * grad
    return float(np.mean((xt @ w).argmax(axis=1) == test_y))
