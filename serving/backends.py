"""Three interchangeable back ends with one method: `predict(signature, inputs, output_names)`.

Errors are split in two so that callers can react: `InvalidInputError` (the service rejected these
inputs, TensorFlow's INVALID_ARGUMENT: a smaller batch may succeed) and `ServingError` (anything
else: unreachable, unknown model or signature, wrong answer).
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from serving import rest_json

REST_PORT, GRPC_PORT = 8501, 8500
_NOISE = ("Graph execution error", "Detected at node", "<stack traces unavailable>", "[[", "Node:")


class ServingError(RuntimeError):
    """The service could not answer: unreachable, unknown model or signature, malformed answer."""


class InvalidInputError(ServingError):
    """The service rejected the inputs of this request (e.g. bytes that are not an image)."""


class Backend(Protocol):
    description: str

    def predict(
        self, signature: str, inputs: Mapping[str, np.ndarray], output_names: Sequence[str]
    ) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


def short_tf_message(message: str) -> str:
    """The informative line(s) of a TensorFlow error, without graph node names and stack notes."""
    lines = [line.strip() for line in message.splitlines()]
    kept = [line for line in lines if line and not line.startswith(_NOISE)]
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", " ".join(kept) or message.strip())
    return re.sub(r"\s*\[Op:[^\]]*\]$", "", text).strip()


def _check_outputs(outputs: dict[str, np.ndarray], output_names: Sequence[str], signature: str) -> dict:
    missing = [n for n in output_names if n not in outputs]
    if missing:
        raise ServingError(f"signature {signature!r} answered without output(s) {missing} (got {sorted(outputs)})")
    return {n: outputs[n] for n in output_names}


class LocalBackend:
    """A SavedModel folder loaded in this process; signatures are called by name, as TF Serving does."""

    def __init__(self, model_dir: str):
        import tensorflow as tf

        self._tf = tf
        self.model_dir = model_dir
        self.description = f"local SavedModel {model_dir}"
        try:
            self._model = tf.saved_model.load(model_dir)
        except (OSError, ValueError, tf.errors.OpError) as err:
            raise ServingError(f"cannot load the SavedModel in {model_dir}: {err}") from err

    @property
    def signatures(self) -> list[str]:
        return list(self._model.signatures)

    def input_names(self, signature: str) -> list[str]:
        return list(self._signature(signature).structured_input_signature[1])

    def _signature(self, signature: str):
        try:
            return self._model.signatures[signature]
        except KeyError:
            raise ServingError(
                f"{self.model_dir} has no signature {signature!r} (it has {', '.join(self.signatures)})"
            ) from None

    def predict(
        self, signature: str, inputs: Mapping[str, np.ndarray], output_names: Sequence[str] = ()
    ) -> dict[str, np.ndarray]:
        tf = self._tf
        fn = self._signature(signature)
        expected = self.input_names(signature)
        if sorted(inputs) != sorted(expected):
            raise InvalidInputError(f"signature {signature!r} takes input(s) {expected}, got {sorted(inputs)}")
        try:
            outputs = fn(**{name: tf.constant(values) for name, values in inputs.items()})
        except tf.errors.InvalidArgumentError as err:
            raise InvalidInputError(short_tf_message(err.message)) from None
        except tf.errors.OpError as err:
            raise ServingError(short_tf_message(err.message)) from None
        return _check_outputs({k: v.numpy() for k, v in outputs.items()}, output_names or list(outputs), signature)

    def fingerprint(self) -> str:
        """The SavedModel's checksum (fingerprint.pb); equal for a model and its pushed copy."""
        fp = self._tf.saved_model.experimental.read_fingerprint(self.model_dir)
        return str(fp.saved_model_checksum)

    def close(self) -> None:
        self._model = None


def _model_path(url_path: str, spec: str) -> tuple[str, int | None]:
    """`/v1/models/NAME[/versions/N]` (REST) or `/NAME[/versions/N]` (gRPC) -> (NAME, N)."""
    path = url_path.split(":", 1)[0].strip("/")
    if path.startswith("v1/models/"):
        path = path[len("v1/models/") :]
    match = re.fullmatch(r"([^/]+)(?:/versions/(\d+))?", path)
    if not match:
        raise ServingError(
            f"{spec}: cannot find the model name; use http://HOST:{REST_PORT}/v1/models/NAME "
            f"or grpc://HOST:{GRPC_PORT}/NAME (optionally .../versions/N)"
        )
    return match.group(1), int(match.group(2)) if match.group(2) else None


class RestBackend:
    """TF Serving's REST API: `POST http://HOST:PORT/v1/models/NAME[/versions/N]:predict`."""

    def __init__(self, url: str, timeout: float = 60.0, row_format: bool = True):
        parsed = urllib.parse.urlsplit(url)
        self.model_name, self.version = _model_path(parsed.path, url)
        base = f"{parsed.scheme}://{parsed.netloc}/v1/models/{self.model_name}"
        self.predict_url = base + (f"/versions/{self.version}" if self.version else "") + ":predict"
        self.timeout, self.row_format = timeout, row_format
        self.description = f"TF Serving REST {self.predict_url}"

    def predict(
        self, signature: str, inputs: Mapping[str, np.ndarray], output_names: Sequence[str]
    ) -> dict[str, np.ndarray]:
        body = rest_json.build_predict_body(signature, inputs, self.row_format)
        request = urllib.request.Request(
            self.predict_url,
            data=json.dumps(body).encode("utf-8"),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                payload = json.loads(reply.read())
        except urllib.error.HTTPError as err:
            message = _error_text(err)
            if err.code == 400:
                raise InvalidInputError(message) from None
            raise ServingError(f"HTTP {err.code} from {self.predict_url}: {message}") from None
        except (urllib.error.URLError, OSError) as err:
            raise ServingError(f"cannot reach {self.predict_url}: {getattr(err, 'reason', err)}") from None
        except json.JSONDecodeError as err:
            raise ServingError(f"{self.predict_url} answered with something that is not JSON: {err}") from None
        try:
            outputs = rest_json.parse_predict_response(payload, output_names)
        except rest_json.RestFormatError as err:
            raise ServingError(str(err)) from None
        return _check_outputs(outputs, output_names, signature)

    def close(self) -> None:
        pass


def _error_text(err: urllib.error.HTTPError) -> str:
    raw = err.read()
    try:
        return short_tf_message(str(json.loads(raw)["error"]))
    except (ValueError, KeyError, TypeError):
        return raw.decode("utf-8", "replace")[:500] or str(err.reason)


class GrpcBackend:
    """TF Serving's gRPC `tensorflow.serving.PredictionService/Predict` at `grpc://HOST:PORT/NAME[/versions/N]`."""

    def __init__(self, url: str, timeout: float = 60.0):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        parsed = urllib.parse.urlsplit(url)
        self.model_name, self.version = _model_path(parsed.path, url)
        self.target = parsed.netloc if parsed.port else f"{parsed.hostname}:{GRPC_PORT}"
        self.timeout = timeout
        self.description = f"TF Serving gRPC {self.target} model {self.model_name}"
        self._grpc = grpc
        # TF Serving accepts messages up to 2 GB; gRPC's client default (4 MB) is too small for image batches.
        options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
        self._channel = grpc.insecure_channel(self.target, options=options)
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def predict(
        self, signature: str, inputs: Mapping[str, np.ndarray], output_names: Sequence[str]
    ) -> dict[str, np.ndarray]:
        from serving import grpc_protos

        request = grpc_protos.build_predict_request(self.model_name, signature, inputs, self.version)
        request.output_filter.extend(output_names)
        try:
            response = self._stub.Predict(request, timeout=self.timeout)
        except self._grpc.RpcError as err:
            code, details = err.code(), short_tf_message(err.details() or "")
            if code == self._grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidInputError(details) from None
            raise ServingError(f"gRPC {code.name} from {self.target}: {details}") from None
        return _check_outputs(grpc_protos.parse_predict_response(response), output_names, signature)

    def close(self) -> None:
        self._channel.close()


def resolve_model_dir(path: str) -> str:
    """A SavedModel folder, or a base folder of numbered versions (as Pusher writes): the highest version."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = [d for d in os.listdir(path) if d.isdigit() and os.path.isfile(os.path.join(path, d, "saved_model.pb"))]
    if not versions:
        raise ServingError(f"{path} holds no saved_model.pb, nor numbered version folders with one")
    return os.path.join(path, max(versions, key=int))


def open_backend(spec: str, timeout: float = 60.0) -> Backend:
    """`http(s)://...` -> REST, `grpc://...` -> gRPC, else a local SavedModel (or versions) folder."""
    scheme = urllib.parse.urlsplit(spec).scheme.lower()
    if scheme in ("http", "https"):
        return RestBackend(spec, timeout=timeout)
    if scheme == "grpc":
        return GrpcBackend(spec, timeout=timeout)
    if not os.path.isdir(spec):
        raise ServingError(f"{spec} is neither a SavedModel folder nor an http(s):// or grpc:// URL")
    return LocalBackend(resolve_model_dir(spec))
