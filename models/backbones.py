"""ResNet-18 / ResNet-50 backbones (torchvision layout, channels_last) in pure Keras 3.

The last BatchNormalization of every residual block starts with gamma = 0, so each block starts as
the identity (Goyal et al. 2017, as in the official SimSiam code). For small inputs (32-96 px) the
stem can be a single 3x3 stride-1 convolution without max-pool (the CIFAR variant); by default only
images under 64 px get it.
"""

from __future__ import annotations

import keras
from keras import layers

from models.conv import Conv2D, MaxPool3x3S2

_BLOCKS = {"resnet18": (2, 2, 2, 2), "resnet50": (3, 4, 6, 3)}
# Below 64 px the ImageNet stem (/4) leaves too little resolution: 32 px ends at 1x1 after stage 4.
SMALL_STEM_BELOW = 64


def _conv(filters: int, kernel: int, stride: int, name: str) -> Conv2D:
    # torchvision's kaiming_normal_(mode="fan_out"). A fresh initializer per layer: an unseeded Keras
    # initializer fixes its seed when constructed, so a shared one gives equal-shaped layers equal weights.
    init = keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="untruncated_normal")
    return Conv2D(filters, kernel, strides=stride, kernel_initializer=init, name=name)


def _bn(name: str, zero_init: bool = False, synchronized: bool = False) -> layers.BatchNormalization:
    # momentum 0.9 / eps 1e-5 are PyTorch's BatchNorm defaults (its momentum 0.1 = 1 - 0.9).
    return layers.BatchNormalization(
        momentum=0.9,
        epsilon=1e-5,
        gamma_initializer="zeros" if zero_init else "ones",
        name=name,
        synchronized=synchronized,
    )


def _basic_block(x, filters: int, stride: int, name: str, sync: bool = False):
    shortcut = x
    y = _conv(filters, 3, stride, f"{name}_conv1")(x)
    y = layers.ReLU(name=f"{name}_relu1")(_bn(f"{name}_bn1", synchronized=sync)(y))
    y = _conv(filters, 3, 1, f"{name}_conv2")(y)
    y = _bn(f"{name}_bn2", zero_init=True, synchronized=sync)(y)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _bn(f"{name}_down_bn", synchronized=sync)(_conv(filters, 1, stride, f"{name}_down_conv")(x))
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))


def _bottleneck_block(x, filters: int, stride: int, name: str, sync: bool = False):
    out_filters = filters * 4
    shortcut = x
    y = _conv(filters, 1, 1, f"{name}_conv1")(x)
    y = layers.ReLU(name=f"{name}_relu1")(_bn(f"{name}_bn1", synchronized=sync)(y))
    y = _conv(filters, 3, stride, f"{name}_conv2")(y)  # stride on the 3x3 conv (ResNet v1.5)
    y = layers.ReLU(name=f"{name}_relu2")(_bn(f"{name}_bn2", synchronized=sync)(y))
    y = _conv(out_filters, 1, 1, f"{name}_conv3")(y)
    y = _bn(f"{name}_bn3", zero_init=True, synchronized=sync)(y)
    if stride != 1 or x.shape[-1] != out_filters:
        shortcut = _bn(f"{name}_down_bn", synchronized=sync)(_conv(out_filters, 1, stride, f"{name}_down_conv")(x))
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))


def resolve_small_stem(image_size: int, small_stem: bool | None) -> bool:
    """`None` picks the small stem below 64 px.

    The small stem keeps 4x the resolution through the network, so it costs ~16x the FLOPs: at 64 px
    that is the difference between ~0.15 and ~2.4 GFLOPs per image. Pass True to use it anyway.
    """
    return image_size < SMALL_STEM_BELOW if small_stem is None else bool(small_stem)


def build_backbone(
    name: str,
    image_size: int,
    small_stem: bool | None = None,
    width: float = 1.0,
    sync_batch_norm: bool = False,
) -> keras.Model:
    """Normalised float images `[B, S, S, 3]` -> globally average-pooled features `[B, F]`.

    `width` scales every channel count (tests use a fraction; F scales with it). `sync_batch_norm`:
    BatchNorm statistics over the global batch of all replicas (Keras `synchronized=True`, TensorFlow
    backend only), as the official SimSiam code's `SyncBatchNorm`; use it when training on several
    devices with `tf.distribute`.
    """
    if name not in _BLOCKS:
        raise ValueError(f"unknown backbone {name!r}; expected one of {sorted(_BLOCKS)}")
    if image_size < 8:
        raise ValueError(f"image_size must be at least 8, got {image_size}")
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    block = _basic_block if name == "resnet18" else _bottleneck_block
    base = max(1, int(round(64 * width)))

    inputs = keras.Input((image_size, image_size, 3), name="images")
    if resolve_small_stem(image_size, small_stem):
        x = _conv(base, 3, 1, "stem_conv")(inputs)
        x = layers.ReLU(name="stem_relu")(_bn("stem_bn", synchronized=sync_batch_norm)(x))
    else:
        x = _conv(base, 7, 2, "stem_conv")(inputs)
        x = layers.ReLU(name="stem_relu")(_bn("stem_bn", synchronized=sync_batch_norm)(x))
        x = MaxPool3x3S2(name="stem_pool")(x)
    for stage, n_blocks in enumerate(_BLOCKS[name]):
        filters = base * 2**stage
        for i in range(n_blocks):
            stride = 2 if (stage > 0 and i == 0) else 1
            x = block(x, filters, stride, name=f"stage{stage + 1}_block{i + 1}", sync=sync_batch_norm)
    features = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, features, name=name)
