"""A loopback stand-in for TF Serving's REST and gRPC predict APIs, on top of a local SavedModel.

For trying the client and the request examples of docs/serving.md where no `tensorflow_model_server`
(or Docker) exists, and for the client's end-to-end tests. It implements only `:predict` (REST),
`GET /v1/models/NAME` (a status answer) and `PredictionService/Predict` (gRPC), binds to loopback
only, and bounds request sizes. It is not a production server: use TF Serving for that.

    python -m tests.fakes.tf_serving --model runs/smoke/serving --name simsiam
"""

from __future__ import annotations

import argparse
import json
import re
import threading
from concurrent import futures
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from serving import rest_json
from serving.backends import InvalidInputError, LocalBackend, ServingError
from tests.fakes import tf_serving_protocol as protocol

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_REQUEST_BYTES = 256 << 20


def _check_loopback(host: str) -> None:
    if host not in LOOPBACK:
        raise ValueError(f"the stand-in server binds to loopback only ({', '.join(LOOPBACK)}), not {host!r}")


def _signature_error(backend: LocalBackend, signature: str) -> str | None:
    if signature not in backend.signatures:
        return f"Serving signature name: {signature!r} not found in signature def"
    return None


def make_rest_server(
    backend: LocalBackend, model_name: str, host: str = "127.0.0.1", port: int = 0
) -> ThreadingHTTPServer:
    """An HTTP server (not yet serving: call `serve_forever`, e.g. in a thread); port 0 picks a free one."""
    _check_loopback(host)
    route = re.compile(rf"^/v1/models/{re.escape(model_name)}(?:/versions/(\d+))?(:predict)?$")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet: tests and examples print their own lines
            pass

        def _reply(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            match = route.match(self.path)
            if not match or match.group(2):
                return self._reply(HTTPStatus.NOT_FOUND, {"error": f"Servable not found for request: {self.path}"})
            self._reply(
                HTTPStatus.OK,
                {
                    "model_version_status": [
                        {"version": match.group(1) or "0", "state": "AVAILABLE", "status": {"error_code": "OK"}}
                    ]
                },
            )

        def do_POST(self) -> None:  # noqa: N802
            match = route.match(self.path)
            if not match or not match.group(2):
                return self._reply(HTTPStatus.NOT_FOUND, {"error": f"Servable not found for request: {self.path}"})
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_REQUEST_BYTES:
                return self._reply(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    {"error": f"request of {length} bytes exceeds {MAX_REQUEST_BYTES}"},
                )
            try:
                body = json.loads(self.rfile.read(length))
                signature = body.get("signature_name", rest_json.DEFAULT_SIGNATURE) if isinstance(body, dict) else ""
                if error := _signature_error(backend, signature):
                    return self._reply(HTTPStatus.BAD_REQUEST, {"error": error})
                signature, inputs = protocol.decode_predict_body(body, backend.input_names(signature))
                outputs = backend.predict(signature, inputs)
                payload = protocol.encode_predict_response(outputs, protocol.is_row_format(body))
            except (json.JSONDecodeError, rest_json.RestFormatError, InvalidInputError) as err:
                return self._reply(HTTPStatus.BAD_REQUEST, {"error": str(err)})
            except ServingError as err:
                return self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": str(err)})
            self._reply(HTTPStatus.OK, payload)

    return ThreadingHTTPServer((host, port), Handler)


def make_grpc_server(backend: LocalBackend, model_name: str, host: str = "127.0.0.1", port: int = 0):
    """(grpc.Server, bound port); the server is started."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    _check_loopback(host)

    class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802 - the gRPC method name
            if request.model_spec.name != model_name:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {request.model_spec.name}")
            signature = request.model_spec.signature_name or rest_json.DEFAULT_SIGNATURE
            if error := _signature_error(backend, signature):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, error)
            try:
                outputs = backend.predict(signature, protocol.request_inputs(request))
            except InvalidInputError as err:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
            except ServingError as err:
                context.abort(grpc.StatusCode.INTERNAL, str(err))
            if request.output_filter:
                outputs = {k: v for k, v in outputs.items() if k in set(request.output_filter)}
            return protocol.build_predict_response(outputs, model_name, signature)

    options = [("grpc.max_receive_message_length", MAX_REQUEST_BYTES), ("grpc.max_send_message_length", -1)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    return server, bound


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fakes.tf_serving", description=__doc__)
    p.add_argument("--model", required=True, help="SavedModel folder, or a folder of numbered versions")
    p.add_argument("--name", default="simsiam", help="model name in URLs (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1", choices=LOOPBACK)
    p.add_argument("--rest-port", type=int, default=8501)
    p.add_argument("--grpc-port", type=int, default=8500)
    args = p.parse_args(argv)
    from serving.backends import resolve_model_dir

    backend = LocalBackend(resolve_model_dir(args.model))
    grpc_server, grpc_port = make_grpc_server(backend, args.name, args.host, args.grpc_port)
    rest = make_rest_server(backend, args.name, args.host, args.rest_port)
    print(
        f"serving {backend.model_dir} as {args.name!r}: REST http://{args.host}:{rest.server_port}"
        f"/v1/models/{args.name}, gRPC {args.host}:{grpc_port} (Ctrl-C stops)",
        flush=True,
    )
    thread = threading.Thread(target=rest.serve_forever, daemon=True)
    thread.start()
    try:
        thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        rest.shutdown()
        grpc_server.stop(grace=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
