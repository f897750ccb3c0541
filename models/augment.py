"""SimSiam's augmentations as one Keras layer, per image and inside the compiled training step.

Pure `keras.ops` + `keras.random` with a `SeedGenerator`, so the layer runs under jit/XLA on JAX and
TensorFlow. Every image of the batch draws its own parameters; calling the layer twice gives two
independent views. The geometric part is separable, so RandomResizedCrop + flip is one bilinear
resample written as two batched matmuls (`R_y @ image @ R_x^T`), and so is the Gaussian blur.

The input is the stored image (the whole photo, squashed to a square larger than the training size:
components/transform.py), so crops sample the full photo at real resolution. `eval_view` is the one
deterministic view that evaluation, the kNN monitor, the probe, the index and serving all use: the
whole stored image resampled to the evaluation size (`SimSiamConfig.eval_size`: the training size
unless a profile sets it larger, as FixRes does) with the same antialiased bilinear kernel as the
training crops (a crop of scale 1.0, ratio 1, no flip).

Differences from torchvision (deliberate, for speed): crop boxes are continuous rather than whole
pixels. ColorJitter applies brightness, contrast, saturation and hue in a random order per image,
as torchvision's `ColorJitter` does (`torch.randperm(4)` per call); under jit the order cannot be
Python control flow, so each of the 4 slots computes the 4 operations and keeps, per image, the one
its permutation names (elementwise work, small beside the two encoder passes).
"""

from __future__ import annotations

import math

import keras
from keras import ops

from models.distribute import replica_context

_GRAY = (0.299, 0.587, 0.114)
_CROP_ATTEMPTS = 10  # torchvision's RandomResizedCrop tries 10 boxes, then falls back to the full image


def _grayscale(x):
    return ops.sum(x * ops.convert_to_tensor(_GRAY, x.dtype), axis=-1, keepdims=True)


def _per_image(v):
    return ops.reshape(v, (-1, 1, 1, 1))


def resample_matrix(start, length, in_size: int, out_size: int, flip=None):
    """`[B, out, in]` bilinear weights sampling `[start, start + length)` (pixels) at `out_size` points.

    `start`, `length`: float `[B]` in input pixels; `flip`: bool `[B]` or None (mirror the output).
    The triangle kernel widens with the step when shrinking, so downscaling is antialiased (as
    Pillow's and `tf.image.resize(antialias=True)`'s bilinear filter).
    """
    step = length / out_size
    offsets = ops.arange(out_size, dtype="float32") + 0.5
    if flip is not None:
        offsets = ops.where(ops.reshape(flip, (-1, 1)), out_size - offsets, offsets)
    centers = ops.reshape(start, (-1, 1)) + offsets * ops.reshape(step, (-1, 1)) - 0.5
    centers = ops.clip(centers, 0.0, in_size - 1.0)
    support = ops.reshape(ops.maximum(step, 1.0), (-1, 1, 1))
    distance = ops.abs(ops.expand_dims(centers, -1) - ops.arange(in_size, dtype="float32"))
    weights = ops.relu(1.0 - distance / support)
    return weights / ops.sum(weights, axis=-1, keepdims=True)


def resample(x, rows, cols):
    """float `[B, H, W, C]` -> `[B, out_h, out_w, C]` with per-image row/column matrices (`R_y x R_x^T`)."""
    x = ops.einsum("boh,bhwc->bowc", rows, x)
    return ops.einsum("bpw,bowc->bopc", cols, x)


def eval_view(images, output_size: int):
    """The deterministic evaluation view: stored images `[B, H, W, 3]` (uint8 0..255 or float in
    [0, 1]) -> float32 `[B, S, S, 3]` in [0, 1], the whole image resampled to `output_size`.

    Defined once and used by every consumer of the encoder (kNN monitor, probe, index, serving), so
    what is evaluated is what is served. Identity when the stored size already is `output_size`.
    """
    x = ops.cast(images, "float32")
    if "int" in keras.backend.standardize_dtype(images.dtype):
        x = x / 255.0
    height, width = x.shape[1], x.shape[2]
    if height == output_size and width == output_size:
        return x
    n = ops.shape(x)[0]
    zeros, ones = ops.zeros((n,), "float32"), ops.ones((n,), "float32")
    rows = resample_matrix(zeros, ones * height, height, output_size)
    cols = resample_matrix(zeros, ones * width, width, output_size)
    return resample(x, rows, cols)


@keras.saving.register_keras_serializable(package="simsiam")
class SimSiamAugmentation(keras.layers.Layer):
    """float images `[B, H, W, 3]` in [0, 1] -> one augmented view `[B, S, S, 3]` in [0, 1], float32.

    `blur_sigma` is relative to `blur_reference_size` px (the recipe's (0.1, 2.0) at 224 px) and is
    scaled to `output_size`.
    """

    def __init__(
        self,
        output_size: int,
        crop_scale: tuple[float, float] = (0.2, 1.0),
        crop_ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip_prob: float = 0.5,
        jitter_prob: float = 0.8,
        brightness: float = 0.4,
        contrast: float = 0.4,
        saturation: float = 0.4,
        hue: float = 0.1,
        grayscale_prob: float = 0.2,
        blur_prob: float = 0.5,
        blur_sigma: tuple[float, float] = (0.1, 2.0),
        blur_reference_size: int = 224,
        seed: int | None = None,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")  # augment in float32 even under a mixed-precision policy
        super().__init__(**kwargs)
        if not 0 < crop_scale[0] <= crop_scale[1] <= 1 or not 0 < crop_ratio[0] <= crop_ratio[1]:
            raise ValueError(f"bad crop_scale {crop_scale} or crop_ratio {crop_ratio}")
        for name, p in (
            ("flip", flip_prob),
            ("jitter", jitter_prob),
            ("grayscale", grayscale_prob),
            ("blur", blur_prob),
        ):
            if not 0 <= p <= 1:
                raise ValueError(f"{name}_prob must lie in [0, 1], got {p}")
        self.output_size = int(output_size)
        self.crop_scale, self.crop_ratio = tuple(crop_scale), tuple(crop_ratio)
        self.flip_prob, self.jitter_prob = flip_prob, jitter_prob
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue
        self.grayscale_prob, self.blur_prob = grayscale_prob, blur_prob
        self.blur_sigma, self.blur_reference_size = tuple(blur_sigma), blur_reference_size
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_size, self.output_size, input_shape[-1])

    def call(self, images):
        return self.apply_parameters(images, self.draw_parameters(ops.shape(images)[0]))

    def apply_parameters(self, images, u):
        """The augmentation as a pure function of the images and their draws `u` (`draw_parameters`).

        Stateless, so it can be compiled on its own (XLA) on any device without capturing the seed
        variable: `SimSiam.augment` does that on the TensorFlow backend.
        """
        x = ops.cast(images, "float32")
        height, width = x.shape[1], x.shape[2]
        x = self._crop_and_flip(x, u[:, : 2 * _CROP_ATTEMPTS + 3], height, width)
        x = ops.where(_per_image(u[:, 23] < self.jitter_prob), self._color_jitter(x, u[:, 24:32]), x)
        x = ops.where(_per_image(u[:, 32] < self.grayscale_prob), ops.repeat(_grayscale(x), 3, axis=-1), x)
        return self._blur(x, u[:, 33] < self.blur_prob, u[:, 34])

    def draw_parameters(self, n):
        """float32 `[n, 35]` uniforms: [crop area x10, crop log-ratio x10, y, x, flip, jitter on/off,
        brightness, contrast, saturation, hue, jitter order keys x4, grayscale on/off, blur on/off,
        blur sigma], one row per image.

        Under a `tf.distribute` strategy with R replicas, each replica holds `n` images of a global
        batch of R*n. Every replica draws the parameters of the whole global batch from the shared
        seed state and keeps its own rows, so replicas never share draws, and replica r's images get
        exactly the views that a single device would give to rows r*n..(r+1)*n-1 of the global batch.
        """
        width = 2 * _CROP_ATTEMPTS + 15
        replica, replicas = replica_context()
        if replicas == 1:
            return keras.random.uniform((n, width), seed=self.seed_generator)
        every = keras.random.uniform((replicas, n, width), seed=self.seed_generator)
        return ops.take(every, replica, axis=0)

    def restart_stream(self, epoch: int) -> None:
        """Puts the random stream at the start of `epoch`'s draws: the state becomes a function of
        (`seed`, `epoch`) only, so a run resumed at epoch e draws what an uninterrupted run draws in
        epoch e, never a replay of epoch 0's. Keras' SeedGenerator state is [key, counter]; the
        epoch goes into the key (a different Philox key is an independent stream)."""
        key = ((self.seed or 0) * 1_000_003 + epoch * 7_919 + 1) % 2**31
        state = self.seed_generator.state
        state.assign(ops.convert_to_tensor([key, 0], dtype=state.dtype))

    # --- geometry -----------------------------------------------------------------------------
    def _crop_and_flip(self, x, u, height: int, width: int):
        k = _CROP_ATTEMPTS
        area = self.crop_scale[0] + (self.crop_scale[1] - self.crop_scale[0]) * u[:, :k]
        log_lo, log_hi = math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])
        ratio = ops.exp(log_lo + (log_hi - log_lo) * u[:, k : 2 * k])
        # Box size as fractions of the image side: w_px * h_px = area * H * W, w_px / h_px = ratio.
        box_w = ops.sqrt(area * ratio * (height / width))
        box_h = ops.sqrt(area / ratio * (width / height))
        fits = ops.logical_and(box_w <= 1.0, box_h <= 1.0)
        first = ops.one_hot(ops.argmax(ops.cast(fits, "int32"), axis=1), k) * ops.cast(fits, "float32")
        found = ops.sum(first, axis=1) > 0
        box_w = ops.where(found, ops.sum(box_w * first, axis=1), 1.0)
        box_h = ops.where(found, ops.sum(box_h * first, axis=1), 1.0)
        top = u[:, 2 * k] * (1.0 - box_h)
        left = u[:, 2 * k + 1] * (1.0 - box_w)
        flip = u[:, 2 * k + 2] < self.flip_prob
        rows = resample_matrix(top * height, box_h * height, height, self.output_size)
        cols = resample_matrix(left * width, box_w * width, width, self.output_size, flip=flip)
        return resample(x, rows, cols)

    # --- colour -------------------------------------------------------------------------------
    def jitter_order(self, u):
        """int32 `[B, 4]`: per image, a permutation of (brightness, contrast, saturation, hue) drawn
        from 4 uniform keys `u` `[B, 4]` (argsort of i.i.d. uniforms is a uniform permutation)."""
        return ops.cast(ops.argsort(u, axis=-1), "int32")

    def _color_jitter(self, x, u):
        """`u` `[B, 8]`: 4 factor draws, then 4 order keys."""

        def factor(column, strength):
            return _per_image(1.0 - strength + 2.0 * strength * column)

        def brightness(x):
            return ops.clip(x * factor(u[:, 0], self.brightness), 0.0, 1.0)

        def contrast(x):
            mean = ops.mean(_grayscale(x), axis=(1, 2, 3), keepdims=True)
            return ops.clip((x - mean) * factor(u[:, 1], self.contrast) + mean, 0.0, 1.0)

        def saturation(x):
            gray = _grayscale(x)
            return ops.clip((x - gray) * factor(u[:, 2], self.saturation) + gray, 0.0, 1.0)

        def hue(x):
            hsv = ops.image.rgb_to_hsv(x)
            shift = _per_image(self.hue * (2.0 * u[:, 3] - 1.0))[..., 0]
            h = hsv[..., 0] + shift
            h = h - ops.floor(h)
            return ops.clip(ops.image.hsv_to_rgb(ops.stack([h, hsv[..., 1], hsv[..., 2]], axis=-1)), 0.0, 1.0)

        # Operations with zero strength are the identity: leave them out of the graph.
        operations = [(k, fn) for k, (fn, s) in enumerate(
            ((brightness, self.brightness), (contrast, self.contrast), (saturation, self.saturation),
             (hue, self.hue))) if s > 0]  # fmt: skip
        order = self.jitter_order(u[:, 4:8])
        for slot in range(4):
            chosen = _per_image(order[:, slot])
            out = x
            for k, fn in operations:
                out = ops.where(chosen == k, fn(x), out)
            x = out
        return x

    # --- blur ---------------------------------------------------------------------------------
    def _blur(self, x, apply, u):
        """Separable Gaussian blur as `G @ x @ G^T` with a per-image `[S, S]` kernel matrix."""
        size = self.output_size
        scale = size / self.blur_reference_size
        lo, hi = self.blur_sigma[0] * scale, self.blur_sigma[1] * scale
        radius = max(1, math.ceil(3 * hi))
        sigma = ops.reshape(lo + (hi - lo) * u, (-1, 1, 1))
        grid = ops.arange(size, dtype="float32")
        distance = ops.expand_dims(grid, 1) - ops.expand_dims(grid, 0)
        kernel = ops.exp(-ops.square(distance) / (2.0 * ops.square(sigma)))
        kernel = kernel * ops.cast(ops.abs(distance) <= radius, "float32")
        kernel = kernel / ops.sum(kernel, axis=-1, keepdims=True)  # renormalised at the borders
        kernel = ops.where(ops.reshape(apply, (-1, 1, 1)), kernel, ops.eye(size, dtype="float32"))
        x = ops.einsum("bij,bjwc->biwc", kernel, x)
        return ops.clip(ops.einsum("bkw,biwc->bikc", kernel, x), 0.0, 1.0)

    def get_config(self):
        config = super().get_config()
        config.update(
            output_size=self.output_size,
            crop_scale=self.crop_scale,
            crop_ratio=self.crop_ratio,
            flip_prob=self.flip_prob,
            jitter_prob=self.jitter_prob,
            brightness=self.brightness,
            contrast=self.contrast,
            saturation=self.saturation,
            hue=self.hue,
            grayscale_prob=self.grayscale_prob,
            blur_prob=self.blur_prob,
            blur_sigma=self.blur_sigma,
            blur_reference_size=self.blur_reference_size,
            seed=self.seed,
        )
        return config
