"""TF Serving's gRPC `PredictRequest` / `PredictResponse`, the client side (`tensorflow-serving-api` protos).

Importing this module imports TensorFlow (the serving protos are built on TensorFlow's).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2


def build_predict_request(
    model_name: str, signature_name: str, inputs: Mapping[str, np.ndarray], version: int | None = None
) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, values in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(values))
    return request


def parse_predict_response(response: predict_pb2.PredictResponse) -> dict[str, np.ndarray]:
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
