"""The server side of TF Serving's predict protocols, for the tests' stand-in server (tests/fakes/tf_serving.py).

What TF Serving does with a REST predict JSON body and a gRPC PredictRequest, following
https://www.tensorflow.org/tfx/serving/api_rest; the client halves are in serving/rest_json.py
and serving/grpc_protos.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from serving.rest_json import (
    DEFAULT_SIGNATURE,
    RestFormatError,
    _b64,
    _from_json_value,
    _is_named_row,
    _to_array,
)


def decode_predict_body(body: bytes | str | Mapping[str, Any], input_names: Sequence[str]) -> tuple[str, dict]:
    """(signature name, {input name: numpy array}) as TF Serving reads a predict request.

    `input_names` are the signature's inputs (needed for the bare single-input forms)."""
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except json.JSONDecodeError as err:
            raise RestFormatError(f"the body is not JSON: {err}") from err
    if not isinstance(body, Mapping):
        raise RestFormatError("the body must be a JSON object")
    signature = body.get("signature_name", DEFAULT_SIGNATURE)
    if ("instances" in body) == ("inputs" in body):
        raise RestFormatError("a predict request has exactly one of `instances` and `inputs`")
    try:
        if "instances" in body:
            rows = body["instances"]
            if not isinstance(rows, list) or not rows:
                raise RestFormatError("`instances` must be a non-empty list")
            if all(_is_named_row(r) for r in rows):
                names = list(rows[0])
                if any(set(r) != set(names) for r in rows):
                    raise RestFormatError("every instance must have the same named inputs")
                inputs = {n: [_from_json_value(r[n]) for r in rows] for n in names}
            else:
                inputs = {_single_input(input_names): _from_json_value(rows)}
        else:
            columns = body["inputs"]
            if _is_named_row(columns):
                inputs = {n: _from_json_value(v) for n, v in columns.items()}
            else:
                inputs = {_single_input(input_names): _from_json_value(columns)}
    except (ValueError, TypeError) as err:  # binascii.Error is a ValueError
        if isinstance(err, RestFormatError):
            raise
        raise RestFormatError(f"bad value in the request: {err}") from err
    unknown = set(inputs) - set(input_names)
    if unknown:
        raise RestFormatError(f"unknown input(s) {sorted(unknown)}; the signature takes {list(input_names)}")
    return signature, {n: _to_array(v) for n, v in inputs.items()}


def _single_input(input_names: Sequence[str]) -> str:
    if len(input_names) != 1:
        raise RestFormatError(f"unnamed inputs need a signature with one input, this one has {list(input_names)}")
    return input_names[0]


def _to_json_value(name: str, array: np.ndarray) -> Any:
    if array.dtype.kind not in "OS":
        return array.tolist()
    encode = _b64 if name.endswith("_bytes") else (lambda b: b.decode("utf-8"))

    def walk(value: Any) -> Any:
        return [walk(v) for v in value] if isinstance(value, list) else encode(bytes(value))

    return walk(array.tolist())


def encode_predict_response(outputs: Mapping[str, np.ndarray], row_format: bool) -> dict[str, Any]:
    """The JSON TF Serving answers with for these signature outputs."""
    values = {n: _to_json_value(n, np.asarray(a)) for n, a in outputs.items()}
    if not row_format:
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    rows = len(next(iter(values.values())))
    return {"predictions": [{n: v[i] for n, v in values.items()} for i in range(rows)]}


def is_row_format(body: bytes | str | Mapping[str, Any]) -> bool:
    if isinstance(body, (bytes, str)):
        body = json.loads(body)
    return "instances" in body


def request_inputs(request) -> dict[str, np.ndarray]:
    import tensorflow as tf

    return {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}


def build_predict_response(outputs: Mapping[str, np.ndarray], model_name: str, signature_name: str):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    response = predict_pb2.PredictResponse()
    response.model_spec.name = model_name
    response.model_spec.signature_name = signature_name
    for name, values in outputs.items():
        response.outputs[name].CopyFrom(tf.make_tensor_proto(values))
    return response


def read_warmup_requests(path: str) -> list:
    """The PredictRequests of a warm-up file, as TF Serving reads them."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    requests = []
    for record in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        if log.WhichOneof("log_type") != "predict_log":
            raise ValueError(f"{path}: unexpected warm-up record type {log.WhichOneof('log_type')}")
        requests.append(log.predict_log.request)
    return requests
