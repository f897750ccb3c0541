"""SimSiam projection and prediction MLPs, as the paper specifies them and its official code lays them out.

Paper: Xinlei Chen and Kaiming He, "Exploring Simple Siamese Representation Learning", CVPR 2021,
https://arxiv.org/abs/2011.10566; the heads are in Sec. 3, "Baseline settings" (docs/recipe.md sums up
the whole recipe). The layer-by-layer details the paper leaves open (no bias before a BN, the output
BN of the projector without scale and shift, PyTorch's initialisation) follow the official code.
"""

from __future__ import annotations

import keras
from keras import layers


def _linear(units: int, name: str, use_bias: bool = False) -> layers.Dense:
    # PyTorch's nn.Linear init, kaiming_uniform(a=sqrt(5)) == U(+-1/sqrt(fan_in)); one initializer per
    # layer (an unseeded Keras initializer fixes its seed when constructed).
    init = keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform")
    return layers.Dense(units, use_bias=use_bias, kernel_initializer=init, name=name)


def _bn(name: str, affine: bool = True, synchronized: bool = False) -> layers.BatchNormalization:
    return layers.BatchNormalization(
        momentum=0.9, epsilon=1e-5, center=affine, scale=affine, name=name, synchronized=synchronized
    )


class _MLP(keras.layers.Layer):
    def __init__(self, output_dim: int, hidden_dim: int, sync_batch_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.output_dim, self.hidden_dim, self.sync_batch_norm = output_dim, hidden_dim, sync_batch_norm
        self.blocks: list[keras.layers.Layer] = []

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.blocks:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def call(self, x):  # `training` reaches the BatchNormalization layers through Keras' call context
        for layer in self.blocks:
            x = layer(x)
        return x

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:-1], self.output_dim)


@keras.saving.register_keras_serializable(package="simsiam")
class SimSiamProjectionHead(_MLP):
    """Linear-BN-ReLU, Linear-BN-ReLU, Linear-BN (no learnable scale/shift); linears without bias.

    The paper's projection MLP (part of the encoder f), Sec. 3: "The projection MLP (in f) has BN
    applied to each fully-connected (fc) layer, including its output fc. Its output fc has no ReLU.
    The hidden fc is 2048-d. This MLP has 3 layers." The output is d = 2048-d as well.
    """

    def __init__(self, output_dim: int = 2048, hidden_dim: int = 2048, sync_batch_norm: bool = False, **kwargs):
        super().__init__(output_dim, hidden_dim, sync_batch_norm, **kwargs)
        sync = sync_batch_norm
        self.blocks = [
            _linear(hidden_dim, "fc1"),
            _bn("bn1", synchronized=sync),
            layers.ReLU(name="relu1"),
            _linear(hidden_dim, "fc2"),
            _bn("bn2", synchronized=sync),
            layers.ReLU(name="relu2"),
            _linear(output_dim, "fc3"),
            _bn("bn3", affine=False, synchronized=sync),
        ]


@keras.saving.register_keras_serializable(package="simsiam")
class SimSiamPredictionHead(_MLP):
    """Bottleneck Linear(d -> hidden, no bias)-BN-ReLU-Linear(hidden -> d); no BN on the output.

    The paper's prediction MLP h, Sec. 3: "The prediction MLP (h) has BN applied to its hidden fc
    layers. Its output fc does not have BN (ablation in Sec. 4.4) or ReLU. This MLP has 2 layers."
    Input and output are d = 2048-d with a 512-d hidden layer, which the paper calls "a bottleneck
    structure".
    """

    def __init__(self, output_dim: int = 2048, hidden_dim: int = 512, sync_batch_norm: bool = False, **kwargs):
        super().__init__(output_dim, hidden_dim, sync_batch_norm, **kwargs)
        self.blocks = [
            _linear(hidden_dim, "fc1"),
            _bn("bn1", synchronized=sync_batch_norm),
            layers.ReLU(name="relu1"),
            _linear(output_dim, "fc2", use_bias=True),
        ]
