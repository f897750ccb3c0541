"""SGD as in the official SimSiam code: momentum, L2 weight decay in the gradient, fixed predictor rate."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="simsiam")
class SimSiamSGD(keras.optimizers.SGD):
    """`keras.optimizers.SGD` with two changes.

    - `l2`: PyTorch-style weight decay, `g + l2 * w`, which then goes through momentum (Keras'
      `weight_decay` is decoupled and would be ~10x weaker at momentum 0.9).
    - Variables whose path has a component equal to `fixed_scope` (the predictor layer's name) use
      `fixed_learning_rate` instead of the scheduled `learning_rate` (SimSiam's "fix_pred_lr").
      Matched by path when the optimizer is built, so a reloaded model keeps the split.
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum: float = 0.9,
        l2: float = 0.0,
        fixed_learning_rate: float | None = None,
        fixed_scope: str = "predictor",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, momentum=momentum, **kwargs)
        self.l2 = float(l2)
        self.fixed_learning_rate = fixed_learning_rate
        self.fixed_scope = fixed_scope
        self._fixed_keys: set = set()

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        if self.fixed_learning_rate is not None:
            self._fixed_keys = {self._var_key(v) for v in variables if self.fixed_scope in v.path.split("/")}
            if not self._fixed_keys:
                raise ValueError(f"fixed_learning_rate is set but no variable path contains {self.fixed_scope!r}")

    def update_step(self, gradient, variable, learning_rate):
        if self._fixed_keys and self._var_key(variable) in self._fixed_keys:
            learning_rate = self.fixed_learning_rate
        if self.l2:
            gradient = ops.add(ops.cast(gradient, variable.dtype), ops.multiply(variable, self.l2))
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {
            **super().get_config(),
            "l2": self.l2,
            "fixed_learning_rate": self.fixed_learning_rate,
            "fixed_scope": self.fixed_scope,
        }
