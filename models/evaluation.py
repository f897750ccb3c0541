"""Frozen-feature evaluation: weighted kNN and a linear probe, numpy in, float out."""

from __future__ import annotations

from dataclasses import dataclass

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


def l2_normalize(x) -> np.ndarray:
    """Rows scaled to unit L2 norm (an all-zero row stays zero); float `[N, D]` -> same dtype (float32
    for integer input)."""
    x = np.asarray(x)
    x = x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def cosine_top_k(queries, keys, k: int, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The `k` rows of `keys` most cosine-similar to each query, most similar first.

    `queries` float `[Q, D]`, `keys` float `[N, D]` -> (row indices int64 `[Q, k']`, similarities
    `[Q, k']`), k' = min(k, N). Ties go to the lower row index (a stable sort), so results are
    deterministic. Shared by the kNN evaluation and `simsiam-tfx search` (serving/index.py).
    """
    keys = l2_normalize(keys)
    k = min(k, len(keys))
    rows, sims = [np.zeros((0, k), np.int64)], [np.zeros((0, k), keys.dtype)]
    for start in range(0, len(queries), chunk):
        s = l2_normalize(queries[start : start + chunk]).astype(keys.dtype) @ keys.T
        order = np.argsort(-s, axis=1, kind="stable")[:, :k]
        rows.append(order)
        sims.append(np.take_along_axis(s, order, axis=1))
    return np.concatenate(rows), np.concatenate(sims)


def knn_predict(train_x, train_y, test_x, k: int = 20, temperature: float = 0.1, chunk: int = 1024) -> np.ndarray:
    """Cosine kNN with the weighted vote of InstDisc (Wu et al. 2018, https://arxiv.org/abs/1805.01978),
    which the SimSiam paper's kNN monitor uses: each of the k nearest training rows adds
    exp(cosine / temperature) to its class; k = 20 and temperature 0.1 are those papers' defaults.

    float `[N, D]`, int `[N]`, float `[Q, D]` -> predicted class indices int64 `[Q]`.
    """
    train_y = np.asarray(train_y, np.int64)
    rows, sims = cosine_top_k(np.asarray(test_x, np.float64), np.asarray(train_x, np.float64), k, chunk)
    num_classes = int(train_y.max()) + 1
    votes = np.zeros((len(rows), num_classes))
    np.add.at(votes, (np.arange(len(rows))[:, None], train_y[rows]), np.exp(sims / temperature))
    return votes.argmax(axis=1)


def knn_accuracy(train_x, train_y, test_x, test_y, k: int = 20, temperature: float = 0.1) -> float:
    train_x, train_y, test_x, test_y = _check(train_x, train_y, test_x, test_y)
    return float(np.mean(knn_predict(train_x, train_y, test_x, k, temperature) == test_y))


PROBE_ITERATIONS = 1000
# Candidate L2 strengths, chosen per fit by cross-validation on the train features: no one strength
# suits every feature set (a fixed 1e-4 under-regularises random-init features; docs/measurements.md,
# "A CPU recipe", gives the accuracies with each).
PROBE_WEIGHT_DECAYS = (1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
PROBE_FOLDS = 5


@dataclass(frozen=True)
class LinearProbe:
    """A fitted linear classifier on standardised features: `logits = ((x - mean) / std) @ weights + bias`.

    `mean`, `std`: float64 `[F]` (train-feature statistics); `weights` `[F, C]`; `bias` `[C]`.
    The pipeline's LinearProbeTrainer copies these numbers into the served Keras classifier
    (components/train/probe.py), and `benchmarks.quality` scores with the same fit, so both
    report one and the same probe.
    """

    mean: np.ndarray
    std: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    weight_decay: float = 0.0
    cv_accuracy: dict[float, float] | None = None  # mean held-out accuracy per candidate, when chosen by CV

    def logits(self, x) -> np.ndarray:
        """float `[N, F]` -> float64 logits `[N, C]`."""
        return ((np.asarray(x, np.float64) - self.mean) / self.std) @ self.weights + self.bias

    def predict(self, x) -> np.ndarray:
        """float `[N, F]` -> int64 class indices `[N]`."""
        return self.logits(x).argmax(axis=1)


def fit_linear_probe(
    train_x,
    train_y,
    num_classes: int | None = None,
    weight_decay: float | None = None,
    iterations: int = PROBE_ITERATIONS,
) -> LinearProbe:
    """Multinomial logistic regression on standardised features (train statistics), L2-regularised.

    Minimises `mean cross-entropy + weight_decay / 2 * ||W||^2` (the bias is not decayed) by
    full-batch Nesterov-accelerated gradient descent with step 1/L (Nesterov 1983; L bounds the
    Hessian): convex, deterministic (zero init, no sampling), numpy only, so it runs unchanged on a
    machine that has JAX but no TensorFlow or scikit-learn. This is the standard "linear evaluation"
    of frozen features (SimSiam paper, Sec. 4 / Appendix A) in its simplest deterministic form.
    `weight_decay=None` picks it from PROBE_WEIGHT_DECAYS by PROBE_FOLDS-fold cross-validation on
    the train features only (fold = row index modulo PROBE_FOLDS; ties go to the stronger decay),
    then refits on all of them: the eval split never chooses anything.

    `train_x` float `[N, F]`, `train_y` int `[N]` in `[0, num_classes)`. Raises ValueError on bad
    shapes, negative labels or an empty set.
    """
    x = np.asarray(train_x, np.float64)
    y = np.asarray(train_y).astype(np.int64)
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need features [N, F] and N labels, N > 0; got {x.shape} and {y.shape}")
    if y.min() < 0:
        raise ValueError("labels must be non-negative class indices")
    num_classes = int(y.max()) + 1 if num_classes is None else num_classes
    if y.max() >= num_classes:
        raise ValueError(f"label {int(y.max())} is not below num_classes={num_classes}")
    cv_accuracy = None
    if weight_decay is None:
        folds = np.arange(len(x)) % PROBE_FOLDS
        cv_accuracy = {}
        for wd in PROBE_WEIGHT_DECAYS:
            correct = 0
            for k in range(PROBE_FOLDS):
                held = folds == k
                probe = _fit(x[~held], y[~held], num_classes, wd, iterations)
                correct += int(np.sum(probe.predict(x[held]) == y[held]))
            cv_accuracy[wd] = correct / len(x)
        weight_decay = max(PROBE_WEIGHT_DECAYS, key=lambda wd: (cv_accuracy[wd], wd))
    probe = _fit(x, y, num_classes, weight_decay, iterations)
    return LinearProbe(probe.mean, probe.std, probe.weights, probe.bias, weight_decay, cv_accuracy)


def _fit(x: np.ndarray, y: np.ndarray, num_classes: int, weight_decay: float, iterations: int) -> LinearProbe:
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)
    xs = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    targets = np.eye(num_classes)[y]
    n = len(xs)
    decay = np.full((xs.shape[1], 1), weight_decay)
    decay[-1] = 0.0  # no decay on the bias row
    # Softmax cross-entropy is (1/2) ||X||_2^2 / n smooth at most; the L2 term adds weight_decay.
    step = 1.0 / (0.5 * np.linalg.norm(xs, 2) ** 2 / n + weight_decay)
    w = w_prev = np.zeros((xs.shape[1], num_classes))
    for t in range(1, iterations + 1):
        v = w + (t - 2) / (t + 1) * (w - w_prev) if t > 1 else w
        logits = xs @ v
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        grad = xs.T @ (probs - targets) / n + decay * v
        w_prev, w = w, v - step * grad
    return LinearProbe(mean=mean, std=std, weights=w[:-1], bias=w[-1], weight_decay=weight_decay)


def frozen_feature_scores(train_x, train_y, test_x, test_y, k: int = 20) -> dict[str, float]:
    """What this project reports for any encoder: `{"linear_probe": accuracy of fit_linear_probe,
    "knn": kNN accuracy (k, cosine), "probe_weight_decay": the decay cross-validation chose}` on the
    test features. Used by the SimSiam Trainer (random-init baseline) and `benchmarks.quality`."""
    train_x, train_y, test_x, test_y = _check(train_x, train_y, test_x, test_y)
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    probe = fit_linear_probe(train_x, train_y, num_classes)
    return {
        "linear_probe": float(np.mean(probe.predict(test_x) == test_y)),
        "knn": knn_accuracy(train_x, train_y, test_x, test_y, k=k),
        "probe_weight_decay": probe.weight_decay,
    }


# --- Label-free measures: is an encoder worth serving when there are no labels to probe with? ---

RANKME_EPSILON = 1e-7  # the RankMe paper's epsilon (Garrido et al. 2023, eq. 1)


def _check_embeddings(embeddings) -> np.ndarray:
    z = np.asarray(embeddings, np.float64)
    if z.ndim != 2:
        raise ValueError(f"need embeddings [N, D], got shape {z.shape}")
    if z.size == 0:
        raise ValueError(f"need at least one row and one dimension, got shape {z.shape}")
    if not np.all(np.isfinite(z)):
        bad = int(np.sum(~np.all(np.isfinite(z), axis=1)))
        raise ValueError(f"{bad} of {len(z)} embedding rows hold NaN or inf (a diverged encoder?)")
    return z


def effective_rank(embeddings, epsilon: float = RANKME_EPSILON) -> float:
    """RankMe, the effective rank of an embedding matrix: exp of the entropy of its normalised
    singular values. Garrido, Balestriero, Najman, LeCun, "RankMe: Assessing the Downstream
    Performance of Pretrained Self-Supervised Representations by Their Rank", ICML 2023,
    https://arxiv.org/abs/2210.02885, eq. 1 (after Roy & Vetterli 2007):

        p_k = sigma_k / ||sigma||_1 + epsilon,   RankMe = exp(-sum_k p_k log p_k)

    on the singular values sigma of the uncentred `[N, D]` matrix, as the paper does. It lies in
    [1, min(N, D)] (up to epsilon terms): 1 when every row is a multiple of one vector (a collapsed
    encoder), min(N, D) when all singular values are equal. The paper shows it tracks linear-probe
    accuracy across hyper-parameters of one method without any label, which is why it gates models
    trained on unlabelled images (components/evaluate/label_free.py). Uncentred, as published: on the
    493 eval photos of the Flowers cpu run (`python -m benchmarks.label_free --run runs/cpu`) it puts
    the trained encoder at 2.74x the random-init rank and a collapsing one (no stop-gradient) at 0.81x;
    centring the rows first separates them less (1.57x and 0.40x, random init's rank 70 instead of 34),
    so there was no reason to deviate.

    `embeddings`: float `[N, D]`, N >= 1, D >= 1, finite (computed in float64). Returns a float;
    an all-zero matrix (no direction at all) returns 0.0. Raises ValueError on a non-2-D, empty or
    non-finite input.
    """
    z = _check_embeddings(embeddings)
    sigma = np.linalg.svd(z, compute_uv=False)
    total = float(np.sum(sigma))
    if total == 0.0:
        return 0.0
    p = sigma / total + epsilon
    return float(np.exp(-np.sum(p * np.log(p))))


def embedding_collapse_std(embeddings) -> float:
    """The SimSiam paper's collapse monitor (Chen & He, "Exploring Simple Siamese Representation
    Learning", CVPR 2021, Sec. 4.1 and Fig. 2): rows l2-normalised, the std of each dimension over
    the rows (population std, ddof=0), averaged over dimensions, times sqrt(D).

    For unit vectors spread isotropically each dimension's std is about 1/sqrt(D), so the measure
    is ~1 for a healthy encoder and 0 when every row points the same way (collapse). The numpy twin
    of `models.losses.collapse_std`, which the SimSiam model logs in training (same definition; a
    zero row stays zero in both).

    `embeddings`: float `[N, D]`, N >= 1, finite. Returns a float >= 0. Raises ValueError on a
    non-2-D, empty or non-finite input.
    """
    z = l2_normalize(_check_embeddings(embeddings))
    return float(np.mean(np.std(z, axis=0)) * np.sqrt(z.shape[1]))
