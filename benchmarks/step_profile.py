"""Where a SimSiam training step spends its time, part by part (TensorFlow backend).

    python -m benchmarks.step_profile --image-size 64 --batch-size 128 --precision fp32

Times, for one view of a batch: the augmentation (plain tf.function and XLA-compiled), the encoder's
forward pass, its forward + backward pass, and the heads' forward + backward pass. A step is two
views of all of it plus the optimizer. Prints one JSON line of milliseconds (mean of `--repeats`
calls after one warm-up call). This is how docs/measurements.md's "Training throughput" found that the
augmentation, not the network, was worth compiling with XLA.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _timed(fn, repeats: int) -> float:
    """Milliseconds per call of `fn` (a tf.function), after one warm-up call."""
    import tensorflow as tf

    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        result = fn()
    _ = [t.numpy() for t in tf.nest.flatten(result)]  # wait for the last call
    return round((time.perf_counter() - start) / repeats * 1000, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--stored-size", type=int, default=None, help="default: image size x 9/8")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import numpy as np
    import tensorflow as tf

    from benchmarks.machine import describe_device
    from models.config import SimSiamConfig, configure_precision
    from models.simsiam import build_simsiam

    device, has_gpu = describe_device("tensorflow")
    policy = configure_precision(has_gpu, args.precision)
    config = SimSiamConfig(image_size=args.image_size, stored_size=args.stored_size, width=args.width)
    model = build_simsiam(config)
    rng = np.random.default_rng(0)
    stored = tf.constant(
        rng.integers(0, 256, (args.batch_size, config.stored_size, config.stored_size, 3)).astype("float32") / 255.0
    )
    view = tf.random.uniform((args.batch_size, args.image_size, args.image_size, 3))
    features = tf.random.uniform((args.batch_size, int(model.encoder.output.shape[-1])))

    def encoder_forward_backward():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.cast(model.encoder(view, training=True), tf.float32))
        return tape.gradient(loss, model.encoder.trainable_variables)

    def heads_forward_backward():
        with tf.GradientTape() as tape:
            out = model.predictor(model.projector(features, training=True), training=True)
            loss = tf.reduce_mean(tf.cast(out, tf.float32))
        return tape.gradient(loss, model.projector.trainable_variables + model.predictor.trainable_variables)

    ms = {
        "augmentation": _timed(tf.function(lambda: model.augmentation(stored)), args.repeats),
        "augmentation_xla": _timed(tf.function(lambda: model.augmentation(stored), jit_compile=True), args.repeats),
        "encoder_forward": _timed(tf.function(lambda: model.encoder(view, training=True)), args.repeats),
        "encoder_forward_backward": _timed(tf.function(encoder_forward_backward), args.repeats),
        "heads_forward_backward": _timed(tf.function(heads_forward_backward), args.repeats),
    }
    print(
        json.dumps(
            {
                "benchmark": "step_profile",
                "unit": "ms per view of one batch",
                **ms,
                "image_size": args.image_size,
                "stored_size": config.stored_size,
                "batch_size": args.batch_size,
                "width": args.width,
                "precision": policy,
                "device": device,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
