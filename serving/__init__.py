"""A small client for the serving SavedModel, over interchangeable back ends.

- a local SavedModel folder (`tf.saved_model.load`, signatures called by name),
- a TF Serving REST endpoint (`http://HOST:8501/v1/models/NAME`, JSON with base64 image bytes),
- a TF Serving gRPC endpoint (`grpc://HOST:8500/NAME`, `PredictionService/Predict`).

`open_backend(spec)` picks one from the spec; `EmbeddingClient` batches images, validates them
with Pillow first and, when the service rejects a batch, retries item by item so that one bad
image never costs the good ones. TensorFlow is imported only when a back end is opened.
"""

from serving.backends import Backend, InvalidInputError, ServingError, open_backend
from serving.client import SIGNATURE_OUTPUTS, EmbeddingClient, PredictResult

__all__ = [
    "SIGNATURE_OUTPUTS",
    "Backend",
    "EmbeddingClient",
    "InvalidInputError",
    "PredictResult",
    "ServingError",
    "open_backend",
]
