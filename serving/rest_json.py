"""TF Serving's REST predict JSON, the client side (pure Python + numpy).

`build_predict_body` and `parse_predict_response` (the server side, for the tests' stand-in
server, is in tests/fakes/tf_serving_protocol.py). The rules follow
https://www.tensorflow.org/tfx/serving/api_rest:
- request: `{"signature_name": S, "instances": [...]}` (row format) or `{"inputs": ...}` (columnar);
  a row is `{input name: value}`, or the bare value when the signature has one input;
  `{"b64": "..."}` carries binary DT_STRING values (standard base64).
- response: `{"predictions": [...]}` for rows, `{"outputs": ...}` for columnar; with a single output
  the values come bare (without its name), else as `{output name: value}`. DT_STRING outputs come
  as text, or as `{"b64": ...}` when the output name ends in `_bytes`. Errors: `{"error": "..."}`.
"""

from __future__ import annotations

import base64
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
        return {
            "signature_name": signature_name,
            "instances": [{name: column[i] for name, column in encoded.items()} for i in range(rows)],
        }
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
