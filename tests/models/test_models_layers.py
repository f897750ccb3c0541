"""Backbones, heads, encoder and the XLA-friendly conv/pool layers, on the current Keras backend.

tests/models/test_models_backends.py runs this file again under the other backend.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from models.backbones import build_backbone, resolve_small_stem
from models.conv import Conv2D, MaxPool3x3S2
from models.encoder import build_encoder
from models.heads import SimSiamPredictionHead, SimSiamProjectionHead

FEATURE_DIMS = {"resnet18": 512, "resnet50": 2048}  # the torchvision models' pooled features


def _count(variables) -> int:
    return sum(math.prod(v.shape) for v in variables)


@pytest.mark.parametrize(
    ("kernel", "stride", "size"),
    [(3, 1, 8), (3, 2, 8), (1, 2, 8), (7, 2, 16), (3, 1, 2), (3, 2, 4), (3, 2, 7), (3, 1, 1)],
)
def test_conv_xla_path_equals_native_convolution(kernel, stride, size):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, size, size, 5)).astype("float32")
    weights = rng.normal(size=(kernel, kernel, 5, 6)).astype("float32")
    outputs = []
    for implementation in ("native", "xla"):
        layer = Conv2D(6, kernel, stride, implementation=implementation)
        layer.build(x.shape)
        layer.kernel.assign(weights)
        outputs.append(keras.ops.convert_to_numpy(layer(x)))
    # Reference: numpy with PyTorch's symmetric zero padding k // 2.
    p = kernel // 2
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    out = (size + 2 * p - kernel) // stride + 1
    expected = np.zeros((2, out, out, 6), "float64")
    for i in range(out):
        for j in range(out):
            patch = xp[:, i * stride : i * stride + kernel, j * stride : j * stride + kernel, :]
            expected[:, i, j] = np.einsum("bhwc,hwcf->bf", patch, weights)
    assert layer.compute_output_shape(x.shape) == expected.shape
    for got in outputs:
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_conv_rejects_even_kernels_and_large_strides():
    with pytest.raises(ValueError):
        Conv2D(4, 2)
    with pytest.raises(ValueError):
        Conv2D(4, 3, strides=3)


@pytest.mark.parametrize("implementation", ["native", "xla"])
def test_stem_max_pool_matches_torchvision_semantics(implementation):
    x = np.abs(np.random.default_rng(1).normal(size=(2, 8, 6, 3))).astype("float32")
    got = keras.ops.convert_to_numpy(MaxPool3x3S2(implementation=implementation)(x))
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    expected = np.stack(
        [
            np.stack([xp[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3].max(axis=(1, 2)) for j in range(3)], axis=1)
            for i in range(4)
        ],
        axis=1,
    )
    np.testing.assert_array_equal(got, expected)


# torchvision's resnet18 / resnet50 parameter counts without the final fc layer.
@pytest.mark.parametrize(("name", "params"), [("resnet18", 11_689_512 - 513_000), ("resnet50", 25_557_032 - 2_049_000)])
def test_backbone_matches_torchvision_parameter_count(name, params):
    backbone = build_backbone(name, 64, small_stem=False)
    assert _count(backbone.trainable_variables) == params
    assert backbone.output.shape == (None, FEATURE_DIMS[name])


def test_last_bn_of_every_residual_block_starts_at_zero():
    for name, last in (("resnet18", "_bn2"), ("resnet50", "_bn3")):
        backbone = build_backbone(name, 32, width=0.25)
        block_bns = [layer for layer in backbone.layers if "block" in layer.name and layer.name.endswith("_bn1")]
        assert len(block_bns) == (8 if name == "resnet18" else 16)
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                gamma = keras.ops.convert_to_numpy(layer.gamma)
                assert np.all(gamma == (0.0 if layer.name.endswith(last) else 1.0)), layer.name


def test_small_stem_is_a_3x3_conv_without_pool_and_default_below_64_px():
    assert resolve_small_stem(32, None) and not resolve_small_stem(64, None)
    assert resolve_small_stem(64, True) and not resolve_small_stem(32, False)
    small = build_backbone("resnet18", 32)
    assert small.get_layer("stem_conv").kernel.shape == (3, 3, 3, 64)
    assert "stem_pool" not in [layer.name for layer in small.layers]
    assert small.get_layer("stage4_block2_out").output.shape[1:3] == (4, 4)
    large = build_backbone("resnet18", 64)
    assert large.get_layer("stem_conv").kernel.shape == (7, 7, 3, 64)
    assert large.get_layer("stage4_block2_out").output.shape[1:3] == (2, 2)


def test_backbone_width_scales_channels_and_forward_runs():
    backbone = build_backbone("resnet18", 16, width=0.125)
    assert backbone.output.shape == (None, 64)
    features = keras.ops.convert_to_numpy(backbone(np.random.default_rng(0).normal(size=(2, 16, 16, 3))))
    assert features.shape == (2, 64) and np.all(np.isfinite(features)) and np.all(features >= 0)


def test_equal_shaped_layers_get_different_initial_weights():
    keras.utils.set_random_seed(0)
    backbone = build_backbone("resnet18", 16, width=0.125)
    names = ("stage1_block1_conv1", "stage1_block2_conv1")
    a, b = (keras.ops.convert_to_numpy(backbone.get_layer(n).kernel) for n in names)
    assert a.shape == b.shape and not np.allclose(a, b)
    keras.utils.set_random_seed(0)
    again = build_backbone("resnet18", 16, width=0.125)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(again.get_layer("stage1_block1_conv1").kernel), a)


def test_backbone_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("vgg16", 32)


def test_projection_head_layout():
    head = SimSiamProjectionHead(2048, 2048)
    head.build((None, 512))
    dense = [layer for layer in head.blocks if isinstance(layer, keras.layers.Dense)]
    bns = [layer for layer in head.blocks if isinstance(layer, keras.layers.BatchNormalization)]
    assert [d.units for d in dense] == [2048, 2048, 2048] and not any(d.use_bias for d in dense)
    assert [(b.center, b.scale) for b in bns] == [(True, True), (True, True), (False, False)]
    assert isinstance(head.blocks[-1], keras.layers.BatchNormalization)
    assert _count(head.trainable_variables) == 512 * 2048 + 2 * 2048 * 2048 + 2 * 2 * 2048
    z = keras.ops.convert_to_numpy(head(np.random.default_rng(0).normal(size=(16, 512)), training=True))
    # Output BN without scale/shift, in training mode: every dimension standardised over the batch.
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-2)


def test_prediction_head_is_a_bottleneck_without_output_bn():
    head = SimSiamPredictionHead(2048, 512)
    head.build((None, 2048))
    assert isinstance(head.blocks[-1], keras.layers.Dense) and head.blocks[-1].use_bias
    assert head.blocks[0].units == 512 and not head.blocks[0].use_bias
    assert _count(head.trainable_variables) == 2048 * 512 + 2 * 512 + 512 * 2048 + 2048
    assert head.compute_output_shape((None, 2048)) == (None, 2048)


def test_encoder_normalises_with_per_channel_mean_and_std():
    pool = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.GlobalAveragePooling2D()])
    encoder = build_encoder(pool, 4, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 2.0))
    x = np.random.default_rng(0).uniform(size=(2, 4, 4, 3)).astype("float32")
    expected = ((x - [0.5, 0.25, 0.0]) / [0.5, 0.25, 2.0]).mean(axis=(1, 2))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(encoder(x)), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        build_encoder(pool, 4, mean=(0.5, 0.5), std=(1, 1, 1))
