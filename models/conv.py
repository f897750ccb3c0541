"""Convolution and max-pool with PyTorch's symmetric padding, fast under XLA on CPU.

Why not `keras.layers.Conv2D`: "same" padding pads stride-2 convolutions asymmetrically (torchvision
pads k // 2 on every side), and XLA:CPU (JAX, or TensorFlow with jit_compile) falls back to naive
loops for (a) the input gradient of strided convolutions and (b) 3x3 convolutions with tiny outputs
(2x2 maps take seconds instead of milliseconds). So on JAX's CPU backend (or with
`implementation="xla"`) this layer computes the same function differently: stride-2 convolutions
as a stride-1 convolution on a space-to-depth input, and tiny outputs as im2col + matmul. The
kernel keeps the usual `(k, k, C_in, C_out)` layout either way.
"""

from __future__ import annotations

import keras
from keras import ops

_IM2COL_MAX_OUTPUT_PIXELS = 4


def _xla_friendly() -> bool:
    """True for JAX on CPU. TensorFlow (oneDNN) and GPUs (cuDNN) run the plain convolutions well."""
    if keras.backend.backend() != "jax":
        return False
    import jax

    return jax.default_backend() == "cpu"


@keras.saving.register_keras_serializable(package="simsiam")
class Conv2D(keras.layers.Layer):
    """`filters` outputs, odd square `kernel_size`, stride 1 or 2, padding `kernel_size // 2`, no bias."""

    def __init__(
        self,
        filters: int,
        kernel_size: int,
        strides: int = 1,
        kernel_initializer="he_normal",
        implementation: str = "auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if kernel_size % 2 != 1 or strides not in (1, 2):
            raise ValueError(f"need an odd kernel and stride 1 or 2, got {kernel_size=} {strides=}")
        if implementation not in ("auto", "native", "xla"):
            raise ValueError(f"implementation must be auto, native or xla, got {implementation!r}")
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.implementation = implementation

    def build(self, input_shape):
        k = self.kernel_size
        self.kernel = self.add_weight(
            name="kernel",
            shape=(k, k, input_shape[-1], self.filters),
            initializer=self.kernel_initializer,
        )

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        out = [None if d is None else (d + self.strides - 1) // self.strides for d in (h, w)]
        return (b, out[0], out[1], self.filters)

    def call(self, x):
        kernel = ops.cast(self.kernel, x.dtype)
        k, s, p = self.kernel_size, self.strides, self.kernel_size // 2
        xla = self.implementation == "xla" or (self.implementation == "auto" and _xla_friendly())
        if s == 1 and not xla:
            # Stride 1: "same" padding is k // 2 on every side, PyTorch's padding, without a copy.
            return ops.conv(x, kernel, strides=1, padding="same")
        if p:
            x = ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
        hp, wp = x.shape[1], x.shape[2]
        if not xla or hp is None or wp is None:
            return ops.conv(x, kernel, strides=s, padding="valid")
        ho, wo = (hp - k) // s + 1, (wp - k) // s + 1
        if k == 1:
            if s == 2:
                x = x[:, ::2, ::2, :]
            return ops.matmul(x, kernel[0, 0])
        if ho * wo <= _IM2COL_MAX_OUTPUT_PIXELS:
            return self._im2col(x, kernel, ho, wo)
        if s == 2 and hp % 2 == 0 and wp % 2 == 0:
            return self._space_to_depth(x, kernel)
        return ops.conv(x, kernel, strides=s, padding="valid")

    def _im2col(self, x, kernel, ho: int, wo: int):
        k, s = self.kernel_size, self.strides
        cols = [x[:, i : i + s * (ho - 1) + 1 : s, j : j + s * (wo - 1) + 1 : s, :] for i in range(k) for j in range(k)]
        return ops.matmul(ops.concatenate(cols, axis=-1), ops.reshape(kernel, (k * k * kernel.shape[2], -1)))

    def _space_to_depth(self, x, kernel):
        """Stride-2 k x k conv == stride-1 ((k+1)/2)^2 conv over 2x2 blocks (kernel zero-padded to k+1)."""
        k, c, f = self.kernel_size, kernel.shape[2], kernel.shape[3]
        h2, w2, k2 = x.shape[1] // 2, x.shape[2] // 2, (k + 1) // 2
        x = ops.reshape(x, (-1, h2, 2, w2, 2, c))
        x = ops.reshape(ops.transpose(x, (0, 1, 3, 2, 4, 5)), (-1, h2, w2, 4 * c))
        kernel = ops.pad(kernel, [[0, 1], [0, 1], [0, 0], [0, 0]])
        kernel = ops.reshape(kernel, (k2, 2, k2, 2, c, f))
        kernel = ops.reshape(ops.transpose(kernel, (0, 2, 1, 3, 4, 5)), (k2, k2, 4 * c, f))
        return ops.conv(x, kernel, strides=1, padding="valid")

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            implementation=self.implementation,
        )
        return config


@keras.saving.register_keras_serializable(package="simsiam")
class MaxPool3x3S2(keras.layers.Layer):
    """torchvision's stem pool (3x3, stride 2, padding 1) for inputs >= 0 (after a ReLU).

    Under XLA the max-pool gradient (select-and-scatter) is slow on CPU; the XLA path instead takes
    the maximum of contiguous 2-pixel pairs, one axis at a time: output o covers padded pixels
    2o, 2o+1, 2o+2 = pair o and the first pixel of pair o+1.
    """

    def __init__(self, implementation: str = "auto", **kwargs):
        super().__init__(**kwargs)
        if implementation not in ("auto", "native", "xla"):
            raise ValueError(f"implementation must be auto, native or xla, got {implementation!r}")
        self.implementation = implementation

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, None if h is None else (h + 1) // 2, None if w is None else (w + 1) // 2, c)

    def call(self, x):
        xla = self.implementation == "xla" or (self.implementation == "auto" and _xla_friendly())
        h, w = x.shape[1], x.shape[2]
        if not xla or h is None or w is None or h % 2 or w % 2:
            x = ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])  # zeros == -inf padding for x >= 0
            return ops.max_pool(x, 3, strides=2, padding="valid")
        return self._pool_axis(self._pool_axis(x, axis=1), axis=2)

    @staticmethod
    def _pool_axis(x, axis: int):
        pad = [[0, 0]] * 4
        pad[axis] = [1, 1]
        x = ops.pad(x, pad)
        shape = list(x.shape)
        n = shape[axis] // 2
        pairs = ops.reshape(x, [-1] + shape[1:axis] + [n, 2] + shape[axis + 1 :])
        first, second = (_index(pairs, axis + 1, i) for i in (0, 1))
        best = ops.maximum(first, second)
        return ops.maximum(_index(best, axis, slice(0, n - 1)), _index(first, axis, slice(1, n)))


def _index(x, axis: int, index):
    key = [slice(None)] * len(x.shape)
    key[axis] = index
    return x[tuple(key)]
