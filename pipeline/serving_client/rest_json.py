"""TF Serving's REST predict JSON, both sides (pure Python + numpy).

Client side: `build_predict_body` and `parse_predict_response`. Server side (what TF Serving does
with the JSON; used by the loopback stand-in server and the tests): `decode_predict_body` and
`encode_predict_response`. The rules follow https://www.tensorflow.org/tfx/serving/api_rest:
- request: `{"signature_name": S, "instances": [...]}` (row format) or `{"inputs": ...}` (columnar);
  a row is `{input name: value}`, or the bare value when the signature has one input;
  `{"b64": "..."}` carries binary DT_STRING values (standard base64).
- response: `{"predictions": [...]}` for rows, `{"outputs": ...}` for columnar; with a single output
  the values come bare (without its name), else as `{output name: value}`. DT_STRING outputs come
  as text, or as `{"b64": ...}` when the output name ends in `_bytes`. Errors: `{"error": "..."}`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

DEFAULT_SIGNATURE = "serving_default"


class RestFormatError(ValueError):
    """The JSON does not follow TF Serving's REST format (TF Serving answers these with HTTP 400)."""


# ---------------------------------------------------------------- client side

def _b64(value: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(value).decode("ascii")}


def build_predict_body(
    signature_name: str, inputs: Mapping[str, Sequence[bytes]], row_format: bool = True
) -> dict[str, Any]:
    """The JSON body of `POST /v1/models/NAME:predict` for binary string inputs (one value per row)."""
    encoded = {name: [_b64(bytes(v)) for v in values] for name, values in inputs.items()}
    if row_format:
        rows = len(next(iter(encoded.values())))
        return {"signature_name": signature_name,
                "instances": [{name: column[i] for name, column in encoded.items()} for i in range(rows)]}
    return {"signature_name": signature_name, "inputs": encoded}


def _from_json_value(value: Any) -> Any:
    """Nested JSON -> nested Python values, `{"b64": s}` -> bytes, text -> UTF-8 bytes."""
    if isinstance(value, dict):
        if set(value) == {"b64"}:
            return base64.b64decode(value["b64"], validate=True)
        raise RestFormatError(f"unexpected object {sorted(value)} where a value was expected")
    if isinstance(value, list):
        return [_from_json_value(v) for v in value]
    if isinstance(value, str):
        return value.encode("utf-8")
    return value


def _to_array(values: Any) -> np.ndarray:
    array = np.array(values, dtype=object)
    if array.size and all(isinstance(v, bytes) for v in array.flat):
        return array
    return np.array(values)


def _is_named_row(row: Any) -> bool:
    return isinstance(row, dict) and set(row) != {"b64"}


def parse_predict_response(payload: Mapping[str, Any], output_names: Sequence[str]) -> dict[str, np.ndarray]:
    """{output name: array} from a TF Serving predict response; `output_names` names a bare single output."""
    if "error" in payload:
        raise RestFormatError(f"the service answered with an error: {payload['error']}")
    if "predictions" in payload:
        rows = payload["predictions"]
        if not isinstance(rows, list):
            raise RestFormatError("`predictions` must be a list with one entry per input")
        if rows and all(_is_named_row(r) for r in rows):
            names = list(rows[0])
            if any(set(r) != set(names) for r in rows):
                raise RestFormatError("the rows of `predictions` do not all have the same outputs")
            return {n: _to_array([_from_json_value(r[n]) for r in rows]) for n in names}
        return {_single_name(output_names): _to_array(_from_json_value(rows))}
    if "outputs" in payload:
        outputs = payload["outputs"]
        if _is_named_row(outputs):
            return {n: _to_array(_from_json_value(v)) for n, v in outputs.items()}
        return {_single_name(output_names): _to_array(_from_json_value(outputs))}
    raise RestFormatError(f"a predict response has `predictions` or `outputs`, got keys {sorted(payload)}")


def _single_name(output_names: Sequence[str]) -> str:
    if len(output_names) != 1:
        raise RestFormatError(f"the response holds one unnamed output but {list(output_names)} were expected")
    return output_names[0]


# ---------------------------------------------------------------- server side

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
