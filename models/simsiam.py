"""The SimSiam `keras.Model`: uint8 images in, two augmented views, symmetric loss; no labels.

The forward pass (`call`) produces z and p for both views and the loss lives in `compute_loss`,
so Keras' own per-backend `train_step` (TensorFlow GradientTape, JAX `value_and_grad` under jit)
computes the gradients.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from models.augment import SimSiamAugmentation
from models.backbones import build_backbone
from models.config import IMAGENET_MEAN, IMAGENET_STD, SimSiamConfig
from models.encoder import build_encoder
from models.heads import SimSiamPredictionHead, SimSiamProjectionHead
from models.losses import NegativeCosineSimilarity, collapse_std
from models.optimizer import SimSiamSGD


@keras.saving.register_keras_serializable(package="simsiam")
class SimSiam(keras.Model):
    """`fit(images)` with uint8 `[B, T, T, 3]` batches of stored images (T = `stored_size`); logs
    `loss` and `collapse_std` per epoch.

    `call` returns `{"z1", "z2", "p1", "p2"}` (float32) for two fresh augmented `[B, S, S, 3]` views
    of the batch (S = the encoder's input size). `encoder` (normalisation + backbone) is what
    downstream code embeds with, always on `augment.eval_view` of the stored images.
    """

    def __init__(
        self,
        encoder: keras.Model,
        projector: keras.layers.Layer,
        predictor: keras.layers.Layer,
        augmentation: keras.layers.Layer,
        stop_gradient: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.projector = projector
        self.predictor = predictor
        self.augmentation = augmentation
        self.stop_gradient = stop_gradient
        self.loss_fn = NegativeCosineSimilarity(stop_gradient=stop_gradient)
        self.collapse_tracker = keras.metrics.Mean(name="collapse_std")
        self._compiled_augmentation = None

    def build(self, input_shape):
        size = self.augmentation.output_size
        self.augmentation.build(input_shape)
        self.encoder.build((None, size, size, 3))
        features = self.encoder.output.shape[-1]
        self.projector.build((None, features))
        self.predictor.build((None, self.projector.output_dim))
        self.built = True

    def augment(self, x):
        """float `[B, T, T, 3]` in [0, 1] -> one augmented view `[B, S, S, 3]`.

        On the TensorFlow backend the augmentation (a pure function of the images and their random
        draws) is compiled with XLA on its own, even when the step is not: it is dozens of elementwise
        ops on whole images, each a pass over memory unless XLA fuses them, while the convolutions stay
        on oneDNN/cuDNN (XLA's CPU convolutions are far slower; docs/measurements.md, "Training
        throughput", times both). The draws stay outside the XLA function: a compiled function that
        captured the seed variable could not run on a second device under MirroredStrategy. When the
        whole step is jitted (and on JAX) XLA fuses it anyway.
        """
        if keras.backend.backend() != "tensorflow" or self.jit_compile:
            return self.augmentation(x)
        if self._compiled_augmentation is None:
            import tensorflow as tf  # TensorFlow backend only, where it is loaded already

            self._compiled_augmentation = tf.function(self.augmentation.apply_parameters, jit_compile=True)
        return self._compiled_augmentation(x, self.augmentation.draw_parameters(ops.shape(x)[0]))

    def call(self, images, training=False):
        x = ops.cast(images, "float32") / 255.0
        outputs = {}
        # Two separate encoder passes (as the official code): BatchNorm statistics are per view.
        for i in (1, 2):
            z = self.projector(self.encoder(self.augment(x), training=training), training=training)
            p = self.predictor(z, training=training)
            outputs[f"z{i}"], outputs[f"p{i}"] = ops.cast(z, "float32"), ops.cast(p, "float32")
        return outputs

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = self.loss_fn.symmetric(y_pred["p1"], y_pred["p2"], y_pred["z1"], y_pred["z2"])
        if self.losses:
            loss = loss + ops.sum(ops.stack([ops.cast(v, "float32") for v in self.losses]))
        self.collapse_tracker.update_state(collapse_std(ops.stop_gradient(y_pred["z1"])))
        return loss

    def get_config(self):
        config = super().get_config()
        for name in ("encoder", "projector", "predictor", "augmentation"):
            config[name] = keras.saving.serialize_keras_object(getattr(self, name))
        config["stop_gradient"] = self.stop_gradient
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in ("encoder", "projector", "predictor", "augmentation"):
            config[name] = keras.saving.deserialize_keras_object(config[name])
        return cls(**config)


class EpochRandomStreams(keras.callbacks.Callback):
    """At the start of every epoch, puts the augmentation's random stream at that epoch's start
    (`SimSiamAugmentation.restart_stream`): epoch e's views depend on (seed, e) only, so a resumed
    run continues the stream instead of replaying epoch 0's draws."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.augmentation.restart_stream(epoch)


def build_simsiam(
    config: SimSiamConfig,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    sync_batch_norm: bool = False,
) -> SimSiam:
    """A built (not compiled) SimSiam for `config`; call `configure_precision` before this.

    `sync_batch_norm=True` (TensorFlow backend, several replicas under `tf.distribute`) computes every
    BatchNorm's statistics over the global batch, in the backbone and both heads, as the official
    code's `SyncBatchNorm` does; with per-replica statistics the loss depends on how the batch is split.
    """
    backbone = build_backbone(
        config.backbone,
        config.image_size,
        small_stem=config.small_stem,
        width=config.width,
        sync_batch_norm=sync_batch_norm,
    )
    encoder = build_encoder(backbone, config.image_size, mean, std)
    model = SimSiam(
        encoder=encoder,
        projector=SimSiamProjectionHead(
            config.proj_dim, config.proj_hidden_dim, sync_batch_norm=sync_batch_norm, name="projector"
        ),
        predictor=SimSiamPredictionHead(
            config.proj_dim, config.pred_hidden_dim, sync_batch_norm=sync_batch_norm, name="predictor"
        ),
        augmentation=build_augmentation(config),
        stop_gradient=config.stop_gradient,
        name="simsiam",
    )
    model.build((None, config.stored_size, config.stored_size, 3))
    return model


def build_augmentation(config: SimSiamConfig) -> SimSiamAugmentation:
    """The paper's augmentation (Sec. 4, "Implementation details") with `config`'s colour strength and
    smallest crop."""
    s = config.jitter_strength
    return SimSiamAugmentation(
        config.image_size,
        crop_scale=(config.crop_min_scale, 1.0),
        brightness=0.4 * s,
        contrast=0.4 * s,
        saturation=0.4 * s,
        hue=0.1 * s,
        grayscale_prob=config.grayscale_prob,
        seed=config.seed,
        name="augmentation",
    )


def make_schedule(config: SimSiamConfig, steps_per_epoch: int) -> keras.optimizers.schedules.CosineDecay:
    """Keras' `CosineDecay`: linear warm-up from 0 to `base_lr` over `warmup_epochs`, then cosine decay
    to `final_lr` exactly at the last step of `epochs` (SimSiam paper Sec. 4, "lr x cos"; the warm-up
    is Goyal et al. 2017's). The rate never reaches zero early. Raises ValueError on steps_per_epoch < 1.
    """
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    warmup, total = config.warmup_epochs * steps_per_epoch, config.epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else config.base_lr,
        decay_steps=max(total - warmup, 1),
        alpha=config.final_lr / config.base_lr,
        warmup_target=config.base_lr if warmup else None,
        warmup_steps=warmup,
    )


def make_optimizer(model: SimSiam, config: SimSiamConfig, steps_per_epoch: int) -> SimSiamSGD:
    """SimSiamSGD with `make_schedule` over `config.epochs`; the predictor (by layer name) keeps base_lr."""
    return SimSiamSGD(
        learning_rate=make_schedule(config, steps_per_epoch),
        momentum=config.momentum,
        l2=config.weight_decay,
        fixed_learning_rate=config.base_lr if config.fix_pred_lr else None,
        fixed_scope=model.predictor.name,
    )


def compile_simsiam(
    model: SimSiam, config: SimSiamConfig, steps_per_epoch: int, jit_compile: bool | str = "auto"
) -> SimSiam:
    """SGD + warm-up/cosine for backbone and projector, fixed rate for the predictor.

    `jit_compile="auto"` is Keras' choice: XLA on JAX and on a TensorFlow GPU, none on a TensorFlow
    CPU (oneDNN is faster there than XLA's CPU convolutions).
    """
    model.compile(optimizer=make_optimizer(model, config, steps_per_epoch), jit_compile=jit_compile)
    return model
