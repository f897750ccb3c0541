"""The SimSiam loss against a numpy hand computation, and where its gradient flows."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from models.losses import NegativeCosineSimilarity, collapse_std


def _gradients(fn, *args):
    """Gradients of the scalar fn(*args) with respect to every argument (zeros where unconnected)."""
    if keras.backend.backend() == "jax":
        import jax

        return [np.asarray(g) for g in jax.grad(fn, argnums=tuple(range(len(args))))(*args)]
    import tensorflow as tf

    tensors = [tf.constant(a) for a in args]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        value = fn(*tensors)
    grads = tape.gradient(value, tensors)
    return [np.zeros_like(a) if g is None else g.numpy() for a, g in zip(args, grads)]


def _inputs(seed=0, batch=6, dim=5):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(batch, dim)).astype("float32") for _ in range(4)]  # p1, p2, z1, z2


def _cos(a, b):
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_symmetric_loss_equals_hand_computation():
    p1, p2, z1, z2 = _inputs()
    expected = 0.5 * np.mean(-_cos(p1, z2)) + 0.5 * np.mean(-_cos(p2, z1))
    got = float(keras.ops.convert_to_numpy(NegativeCosineSimilarity().symmetric(p1, p2, z1, z2)))
    assert got == pytest.approx(expected, rel=1e-5)
    # Bounds: -1 when p is a positive multiple of the target, +1 for the opposite direction.
    assert float(NegativeCosineSimilarity().symmetric(z2 * 3, z1 * 0.5, z1, z2)) == pytest.approx(-1.0, abs=1e-6)
    assert float(NegativeCosineSimilarity().symmetric(-z2, -z1, z1, z2)) == pytest.approx(1.0, abs=1e-6)


def test_gradient_through_target_branch_is_exactly_zero():
    loss = NegativeCosineSimilarity(stop_gradient=True)
    g_p1, g_p2, g_z1, g_z2 = _gradients(loss.symmetric, *_inputs())
    assert np.all(g_z1 == 0.0) and np.all(g_z2 == 0.0)
    assert np.abs(g_p1).max() > 1e-3 and np.abs(g_p2).max() > 1e-3


def test_gradient_on_prediction_equals_analytic_derivative():
    p1, p2, z1, z2 = _inputs(seed=1)
    g_p1, _, _, _ = _gradients(NegativeCosineSimilarity().symmetric, p1, p2, z1, z2)
    # d/dp [-(p.z) / (|p||z|)] = -(z / (|p||z|) - (p.z) p / (|p|^3 |z|)), times 0.5 / batch.
    norm_p, norm_z = np.linalg.norm(p1, axis=1, keepdims=True), np.linalg.norm(z2, axis=1, keepdims=True)
    dot = np.sum(p1 * z2, axis=1, keepdims=True)
    expected = -(z2 / (norm_p * norm_z) - dot * p1 / (norm_p**3 * norm_z)) * 0.5 / len(p1)
    np.testing.assert_allclose(g_p1, expected, rtol=1e-4, atol=1e-6)


def test_without_stop_gradient_the_target_receives_gradient():
    _, _, g_z1, g_z2 = _gradients(NegativeCosineSimilarity(stop_gradient=False).symmetric, *_inputs())
    assert np.abs(g_z1).max() > 1e-3 and np.abs(g_z2).max() > 1e-3


def test_collapse_std_is_one_for_spread_and_zero_for_collapsed_outputs():
    rng = np.random.default_rng(0)
    spread = rng.normal(size=(4096, 64)).astype("float32")
    assert float(collapse_std(spread)) == pytest.approx(1.0, abs=0.02)
    collapsed = np.tile(rng.normal(size=(1, 64)), (256, 1)).astype("float32") * rng.uniform(1, 2, (256, 1))
    assert float(collapse_std(collapsed.astype("float32"))) == pytest.approx(0.0, abs=1e-5)
