"""TF Serving warm-up records written next to the exported model.

TF Serving replays `<model>/assets.extra/tf_serving_warmup_requests` (a TFRecord of
`tensorflow.serving.PredictionLog`s) when it loads a version and marks the version AVAILABLE only
afterwards, so the first real request does not pay for graph initialisation. One request per
signature the model has (a request for a missing signature would fail the load), on a synthetic
image made here (no data needed at export time).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from PIL import Image
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from components import features as F

WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
IMAGE_SIGNATURES = ("embed_images", "classify_images")  # input `images`; serving_default takes `examples`
ALL_SIGNATURES = ("serving_default", *IMAGE_SIGNATURES)


def synthetic_jpeg(image_size: int) -> bytes:
    """A smooth colour gradient, wider than tall and larger than `image_size`, so resize and crop both run."""
    height, width = max(2 * image_size, 16), max(3 * image_size, 24)
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([255 * x / width, 255 * y / height, 255 * (x + y) / (width + height)], axis=-1)
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(out, format="JPEG", quality=90)
    return out.getvalue()


def synthetic_example(image: bytes) -> bytes:
    """A serialized tf.Example with only the `image` feature, which is all `serving_default` parses."""
    feature = {F.IMAGE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def warmup_logs(image_size: int, signatures: Sequence[str] = ALL_SIGNATURES) -> list[prediction_log_pb2.PredictionLog]:
    """One PredictionLog per name in `signatures` (a subset of ALL_SIGNATURES; ValueError otherwise)."""
    unknown = sorted(set(signatures) - set(ALL_SIGNATURES))
    if unknown:
        raise ValueError(f"no warm-up request for signature(s) {unknown}; known: {list(ALL_SIGNATURES)}")
    image = synthetic_jpeg(image_size)
    requests = [(name, "images", image) for name in IMAGE_SIGNATURES if name in signatures]
    if "serving_default" in signatures:
        requests.append(("serving_default", "examples", synthetic_example(image)))
    logs = []
    for signature, input_name, value in requests:
        request = predict_pb2.PredictRequest()
        request.model_spec.signature_name = signature
        request.inputs[input_name].CopyFrom(tf.make_tensor_proto([value], dtype=tf.string))
        logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def write_warmup_requests(saved_model_dir: str, image_size: int, signatures: Sequence[str] = ALL_SIGNATURES) -> str:
    """Writes the warm-up file into the SavedModel folder (local or remote), one request per name in
    `signatures` (default: the labelled model's three); returns its path."""
    folder = f"{saved_model_dir.rstrip('/')}/{WARMUP_DIR}"
    tf.io.gfile.makedirs(folder)
    path = f"{folder}/{WARMUP_FILE}"
    with tf.io.TFRecordWriter(path) as writer:
        for log in warmup_logs(image_size, signatures):
            writer.write(log.SerializeToString())
    return path
