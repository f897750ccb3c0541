"""`EmbeddingClient`: batches of images to a back end, and no good image lost to a bad one.

One undecodable image makes TensorFlow's decode op fail the whole batch. So images are checked with
Pillow before they are sent (same check as ingestion), and when the service still rejects a batch
(INVALID_ARGUMENT / HTTP 400), the batch is split in halves and retried until the bad inputs are
isolated: every input ends up either with its outputs or in `failed` with a reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from serving.backends import Backend, InvalidInputError, ServingError
from serving.images import check_image_bytes

SIGNATURE_INPUTS = {"embed_images": "images", "classify_images": "images", "serving_default": "examples"}
SIGNATURE_OUTPUTS = {
    "embed_images": ("embedding",),
    "classify_images": ("probabilities", "class_ids", "class_names"),
    "serving_default": ("embedding", "probabilities", "class_ids"),
}


@dataclass
class PredictResult:
    """Outputs for the accepted inputs (rows in input order) and the rejected ones with reasons."""

    indices: list[int] = field(default_factory=list)  # input positions of the output rows
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    failed: list[tuple[int, str]] = field(default_factory=list)  # (input position, reason), sorted

    def __getitem__(self, name: str) -> np.ndarray:
        return self.outputs[name]


class EmbeddingClient:
    def __init__(self, backend: Backend, batch_size: int = 64, max_batch_bytes: int = 32 << 20, validate: bool = True):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.backend, self.batch_size, self.max_batch_bytes, self.validate = (
            backend,
            batch_size,
            max_batch_bytes,
            validate,
        )

    def embed(self, images: Sequence[bytes]) -> PredictResult:
        """`embedding` [n_ok, D] for encoded JPEG/PNG images."""
        return self.predict("embed_images", images)

    def classify(self, images: Sequence[bytes]) -> PredictResult:
        """`probabilities` [n_ok, C], `class_ids` [n_ok] and `class_names` [n_ok] for encoded JPEG/PNG
        images (a labelled run's model; an embedding-only model has no `classify_images`)."""
        return self.predict("classify_images", images)

    def predict(self, signature: str, values: Sequence[bytes]) -> PredictResult:
        if signature not in SIGNATURE_INPUTS:
            raise ValueError(f"unknown signature {signature!r}; one of {sorted(SIGNATURE_INPUTS)}")
        failed: dict[int, str] = {}
        candidates = []
        for i, value in enumerate(values):
            problem = check_image_bytes(value) if self.validate and signature != "serving_default" else None
            if problem is None:
                candidates.append(i)
            else:
                failed[i] = problem.reason
        rows: dict[int, dict[str, np.ndarray]] = {}
        for batch in self._batches(candidates, values):
            self._run(signature, batch, values, rows, failed)
        result = PredictResult(indices=sorted(rows), failed=sorted(failed.items()))
        if rows:
            result.outputs = {
                name: np.stack([rows[i][name] for i in result.indices]) for name in SIGNATURE_OUTPUTS[signature]
            }
        return result

    def _batches(self, indices: list[int], values: Sequence[bytes]) -> Iterator[list[int]]:
        batch, size = [], 0
        for i in indices:
            if batch and (len(batch) == self.batch_size or size + len(values[i]) > self.max_batch_bytes):
                yield batch
                batch, size = [], 0
            batch.append(i)
            size += len(values[i])
        if batch:
            yield batch

    def _run(self, signature: str, batch: list[int], values: Sequence[bytes], rows: dict, failed: dict) -> None:
        try:
            outputs = self._call(signature, [values[i] for i in batch])
        except InvalidInputError as err:
            if len(batch) == 1:
                failed[batch[0]] = f"rejected by the model: {err}"
                return
            half = len(batch) // 2  # bisect: a single bad input costs about 2*log2(batch) extra calls
            self._run(signature, batch[:half], values, rows, failed)
            self._run(signature, batch[half:], values, rows, failed)
            return
        for row, i in enumerate(batch):
            rows[i] = {name: array[row] for name, array in outputs.items()}

    def _call(self, signature: str, values: list[bytes]) -> dict[str, np.ndarray]:
        inputs = {SIGNATURE_INPUTS[signature]: np.array(values, dtype=object)}
        outputs = self.backend.predict(signature, inputs, SIGNATURE_OUTPUTS[signature])
        for name, array in outputs.items():
            if len(array) != len(values):
                raise ServingError(f"{signature}: output {name!r} has {len(array)} rows for {len(values)} inputs")
        return outputs
