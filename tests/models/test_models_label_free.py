"""Label-free measures (RankMe, collapse std) against hand computations, numpy only."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.evaluation import RANKME_EPSILON, effective_rank, embedding_collapse_std


def _rotations(rng, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    u, _ = np.linalg.qr(rng.normal(size=(n, n)))
    v, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return u, v


def test_effective_rank_is_the_exp_entropy_of_the_normalised_singular_values():
    # Singular values (3, 1, 0) hidden behind random rotations: p = (0.75, 0.25, 0) (+ epsilon).
    rng = np.random.default_rng(0)
    u, v = _rotations(rng, 5, 3)
    z = u[:, :3] @ np.diag([3.0, 1.0, 0.0]) @ v.T
    p = np.array([0.75, 0.25, 0.0]) + RANKME_EPSILON
    expected = math.exp(-float(np.sum(p * np.log(p))))  # = 1.7548 (0.75^-0.75 * 0.25^-0.25)
    assert effective_rank(z) == pytest.approx(expected, rel=1e-9)
    assert effective_rank(z) == pytest.approx(0.75**-0.75 * 0.25**-0.25, rel=1e-5)
    assert effective_rank(10.0 * z) == pytest.approx(expected, rel=1e-9)  # scale-free


def test_identical_rows_have_rank_one_and_zero_collapse_std():
    z = np.tile([[0.3, -1.2, 2.0, 0.5]], (50, 1))
    assert effective_rank(z) == pytest.approx(1.0, abs=1e-5)
    assert embedding_collapse_std(z) == pytest.approx(0.0, abs=1e-12)
    # Rows along one direction with different lengths: still rank 1 and collapsed after l2-normalisation.
    scaled = z * np.linspace(0.5, 3.0, 50)[:, None]
    assert effective_rank(scaled) == pytest.approx(1.0, abs=1e-5)
    assert embedding_collapse_std(scaled) == pytest.approx(0.0, abs=1e-12)


def test_orthonormal_columns_have_full_effective_rank():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(64, 16)))  # [64, 16], all singular values 1
    assert effective_rank(q) == pytest.approx(16.0, rel=1e-5)
    assert effective_rank(q[:, :4]) == pytest.approx(4.0, rel=1e-5)
    assert effective_rank(q[:5].T @ q[:5]) <= 5.0 + 1e-4  # never above min(N, D) = rank 5 here


def test_all_zero_embeddings_have_rank_zero():
    assert effective_rank(np.zeros((4, 3))) == 0.0
    assert embedding_collapse_std(np.zeros((4, 3))) == 0.0


def test_collapse_std_equals_hand_computation():
    # Rows e1 and e2 (D = 2): each dimension takes 1 and 0 -> std 0.5; mean 0.5 * sqrt(2).
    assert embedding_collapse_std([[2.0, 0.0], [0.0, 5.0]]) == pytest.approx(0.5 * math.sqrt(2))
    # +-e1 in D = 1: std 1, times sqrt(1).
    assert embedding_collapse_std([[3.0], [-0.5]]) == pytest.approx(1.0)
    # Isotropic Gaussian rows: each coordinate of a unit vector has std 1/sqrt(D) -> ~1.
    rng = np.random.default_rng(2)
    assert embedding_collapse_std(rng.normal(size=(4000, 32))) == pytest.approx(1.0, abs=0.02)


def test_collapse_std_is_the_twin_of_the_training_monitor():
    from models.losses import collapse_std

    rng = np.random.default_rng(3)
    z = rng.normal(size=(32, 8)) + rng.normal(size=(1, 8))
    assert embedding_collapse_std(z) == pytest.approx(float(collapse_std(z.astype(np.float32))), rel=1e-5)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.ones(5), "need embeddings"),
        (np.ones((2, 2, 2)), "need embeddings"),
        (np.zeros((0, 4)), "at least one row"),
        (np.zeros((3, 0)), "at least one row"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), "1 of 2 embedding rows hold NaN or inf"),
        (np.array([[np.inf, 0.0]]), "NaN or inf"),
    ],
)
def test_bad_embeddings_are_rejected_with_the_reason(bad, message):
    for measure in (effective_rank, embedding_collapse_std):
        with pytest.raises(ValueError, match=message):
            measure(bad)
