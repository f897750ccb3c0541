"""SimSiam's symmetric negative cosine similarity with stop-gradient on the target branch."""

from __future__ import annotations

import keras
from keras import ops


def l2_normalize(x, axis: int = -1, epsilon: float = 1e-12):
    return x * ops.rsqrt(ops.maximum(ops.sum(ops.square(x), axis=axis, keepdims=True), epsilon))


@keras.saving.register_keras_serializable(package="simsiam")
class NegativeCosineSimilarity(keras.losses.Loss):
    """D(p, z) = -cos(p, stop_gradient(z)), averaged over the batch; `y_true` is z, `y_pred` is p.

    `symmetric(p1, p2, z1, z2)` is the SimSiam loss D(p1, z2) / 2 + D(p2, z1) / 2, in [-1, 1].
    With `stop_gradient=False` gradients also flow into z (the ablation that collapses).
    """

    def __init__(self, stop_gradient: bool = True, name: str = "negative_cosine_similarity", **kwargs):
        super().__init__(name=name, **kwargs)
        self.stop_gradient = stop_gradient

    def call(self, y_true, y_pred):
        z = ops.stop_gradient(y_true) if self.stop_gradient else y_true
        return -ops.sum(l2_normalize(y_pred) * l2_normalize(z), axis=-1)

    def symmetric(self, p1, p2, z1, z2):
        return 0.5 * self(z2, p1) + 0.5 * self(z1, p2)

    def get_config(self):
        return {**super().get_config(), "stop_gradient": self.stop_gradient}


def collapse_std(z):
    """std over the batch of l2-normalised z [B, d] (the projector's output), averaged over the d dimensions,
    times sqrt(d): ~1 healthy, 0 collapsed (SimSiam paper Sec. 4.1, Fig. 2). The training curve's
    `collapse_std`. The label-free gate's `encoder_spread` is the same formula on the encoder's output
    (after a ReLU, so well below 1 even when healthy): a different number with its own name."""
    z = l2_normalize(ops.cast(z, "float32"))
    return ops.mean(ops.std(z, axis=0)) * (z.shape[-1] ** 0.5)
