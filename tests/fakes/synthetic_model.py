"""A real serving SavedModel built in seconds, without running the pipeline.

The Transform graph of `components.transform.preprocessing_fn` (analysed with TFT on a few generated
images) and a tiny seeded convolutional encoder, exported by the pipeline's own
`components.export.serving_model.export_serving_model` (plus the warm-up file). Same signatures, same decoding,
same errors as a pushed model; only the weights are not learned. For tests and for trying the client.
"""

from __future__ import annotations

import io
import os
import tempfile

import numpy as np
from PIL import Image


def _jpeg(rng: np.random.Generator, height: int, width: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(out, format="JPEG")
    return out.getvalue()


def build_synthetic_serving_model(
    path: str,
    image_size: int = 32,
    class_names: tuple[str, ...] = ("a", "b"),
    embedding_dim: int = 16,
    seed: int = 0,
    encoder=None,
) -> str:
    """`encoder`: a Keras model from [0, 1] images [B, S, S, 3] to features (default: a tiny seeded one),
    e.g. `models.encoder.build_encoder(build_backbone("resnet18", 64), 64, mean, std)` to time the real size."""
    import keras
    import tensorflow as tf
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    from components import features as F
    from components import transform as T
    from components.examples import RAW_FEATURES
    from components.export.serving_model import export_serving_model
    from components.export.warmup import write_warmup_requests

    rng = np.random.default_rng(seed)
    rows = [
        {
            F.IMAGE: [_jpeg(rng, 40 + 3 * i, 48)],
            F.LABEL: [i % len(class_names)],
            F.CLASS_NAME: [class_names[i % len(class_names)].encode()],
            F.IMAGE_ID: [f"{i}.jpg".encode()],
        }
        for i in range(2 * len(class_names))
    ]
    # SchemaGen(infer_feature_shape=True) gives the raw features shape [1], hence the [1] here.
    spec = {name: tf.io.FixedLenFeature([1], tf.as_dtype(dtype)) for name, dtype in RAW_FEATURES.items()}
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    with tempfile.TemporaryDirectory() as tmp:
        transform_dir = os.path.join(tmp, "transform")
        # In-memory rows, not an explicit beam.Pipeline(): with one, the interpreter segfaults while
        # garbage-collecting at exit (TF 2.16 / Beam 2.74), which turns a passing pytest run into rc 139.
        with tft_beam.Context(temp_dir=tmp):
            transform_fn = (rows, metadata) | tft_beam.AnalyzeDataset(
                lambda inputs: T.preprocessing_fn(inputs, {"stored_size": image_size})
            )
            _ = transform_fn | tft_beam.WriteTransformFn(transform_dir)
        init = keras.initializers.GlorotUniform(seed=seed)
        if encoder is None:
            pixels = keras.Input((image_size, image_size, 3))
            x = keras.layers.Conv2D(embedding_dim, 3, strides=2, activation="relu", kernel_initializer=init)(pixels)
            encoder = keras.Model(pixels, keras.layers.GlobalAveragePooling2D()(x), name="synthetic_encoder")
        features = keras.Input((encoder.output.shape[-1],))
        logits = keras.layers.Dense(len(class_names), kernel_initializer=init)(features)
        classifier = keras.Model(features, logits, name="synthetic_classifier")
        export_serving_model(
            path, tft.TFTransformOutput(transform_dir), encoder, classifier, list(class_names), image_size
        )
    write_warmup_requests(path, image_size)
    return path
