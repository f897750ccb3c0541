"""The serving SavedModel as TF Serving sees it, checked in a fresh process.

TF Serving loads a SavedModel into a TF1 session (tag "serve", `__saved_model_init_op`), looks a
signature up by name in the SignatureDefs and feeds/fetches the tensors those name. The probe below
does exactly that, replays the warm-up file, decodes REST JSON (base64) the way TF Serving does, and
sends a batch mixing good and bad image bytes. It runs on the pushed model of the smoke pipeline
(slow) and on a model exported by the same code with tiny weights (fast).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.images import FLOWERS, encode, make_image

REPO = Path(__file__).resolve().parents[2]
STRING, FLOAT, INT64 = "DT_STRING", "DT_FLOAT", "DT_INT64"
EXPECTED = {
    "serving_default": ({"examples": STRING}, {"embedding": FLOAT, "probabilities": FLOAT, "class_ids": INT64}),
    "embed_images": ({"images": STRING}, {"embedding": FLOAT}),
    "classify_images": ({"images": STRING}, {"probabilities": FLOAT, "class_ids": INT64, "class_names": STRING}),
}

PROBE = r"""
import json, os, sys
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from serving import EmbeddingClient, rest_json
from serving.backends import LocalBackend
from pipeline.memory import own_peak_rss_mb
from tests.fakes import tf_serving_protocol as protocol

model_dir, image_dir = sys.argv[1], sys.argv[2]
images = [open(os.path.join(image_dir, n), "rb").read() for n in sorted(os.listdir(image_dir))]
warmup = os.path.join(model_dir, "assets.extra", "tf_serving_warmup_requests")
warmup_requests = protocol.read_warmup_requests(warmup) if os.path.exists(warmup) else []
out = {}
with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as sess:
    meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], model_dir)
    defs = meta.signature_def

    def run(signature, inputs):
        # What TF Serving's Predict does: SignatureDef lookup by name, feed/fetch by tensor name.
        sig = defs[signature]
        fetch = {name: info.name for name, info in sig.outputs.items()}
        return sess.run(fetch, {sig.inputs[name].name: value for name, value in inputs.items()})

    out["signatures"] = {
        name: {"method": d.method_name,
               "inputs": {k: [types_pb2.DataType.Name(v.dtype), [x.size for x in v.tensor_shape.dim]]
                          for k, v in d.inputs.items()},
               "outputs": {k: types_pb2.DataType.Name(v.dtype) for k, v in d.outputs.items()}}
        for name, d in defs.items() if not name.startswith("__")}

    out["warmup"] = []
    for request in warmup_requests:
        answer = run(request.model_spec.signature_name, {k: tf.make_ndarray(v) for k, v in request.inputs.items()})
        out["warmup"].append([request.model_spec.signature_name, {k: list(v.shape) for k, v in answer.items()}])

    body = json.dumps(rest_json.build_predict_body("embed_images", {"images": images}))
    signature, inputs = protocol.decode_predict_body(body, list(defs["embed_images"].inputs))
    reference = run(signature, inputs)
    reply = json.loads(json.dumps(protocol.encode_predict_response(reference, row_format=True)))
    parsed = rest_json.parse_predict_response(reply, ["embedding"])
    out["rest_bytes_equal"] = inputs["images"].tolist() == images
    out["rest_max_abs_diff"] = float(np.abs(parsed["embedding"] - reference["embedding"]).max())
    out["embedding_shape"] = list(reference["embedding"].shape)

    classes = run("classify_images", {"images": images})
    out["class_names"] = [n.decode() for n in classes["class_names"]]
    out["class_ids"] = classes["class_ids"].tolist()
    out["probability_sums"] = classes["probabilities"].sum(axis=1).tolist()
    example = tf.train.Example(features=tf.train.Features(feature={
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[images[0]]))})).SerializeToString()
    default = run("serving_default", {"examples": [example]})
    out["serving_default_vs_embed"] = float(np.abs(default["embedding"][0] - reference["embedding"][0]).max())

    mixed = [images[0], b"these bytes are no image", images[1]]
    try:
        run("embed_images", {"images": mixed})
        out["mixed_error"] = None
    except tf.errors.InvalidArgumentError as err:
        out["mixed_error"] = err.message
    again = run("embed_images", {"images": images})  # the session survives the failed request
    out["after_error_max_abs_diff"] = float(np.abs(again["embedding"] - reference["embedding"]).max())

client = EmbeddingClient(LocalBackend(model_dir), validate=False)  # let the bad bytes reach the model
result = client.embed(mixed)
out["client_indices"] = result.indices
out["client_failed"] = result.failed
out["client_max_abs_diff"] = float(np.abs(result["embedding"] - reference["embedding"][:2]).max())
out["peak_rss_mb"] = own_peak_rss_mb()  # VmHWM: ru_maxrss would report pytest's peak
print("RESULT " + json.dumps(out))
"""


def probe(model_dir: str, image_dir: Path) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, model_dir, str(image_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, f"probe failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT ") :])


def write_images(folder: Path, real: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "0_generated.jpg").write_bytes(encode(make_image((64, 48), seed=1), "JPEG"))
    (folder / "1_generated.png").write_bytes(encode(make_image((30, 50), seed=2), "PNG"))
    if real and FLOWERS.is_dir():
        for i, class_dir in enumerate(sorted(p for p in FLOWERS.iterdir() if p.is_dir())[:2]):
            (folder / f"2_real_{i}.jpg").write_bytes(sorted(class_dir.glob("*.jpg"))[0].read_bytes())
    return folder


def check_contract(result: dict, n_images: int, class_names: list[str] | None) -> None:
    signatures = result["signatures"]
    assert set(signatures) == set(EXPECTED)
    for name, (inputs, outputs) in EXPECTED.items():
        assert signatures[name]["method"] == "tensorflow/serving/predict"
        assert {k: v[0] for k, v in signatures[name]["inputs"].items()} == inputs
        assert all(v[1] == [-1] for v in signatures[name]["inputs"].values()), "inputs must be a batch [B]"
        assert signatures[name]["outputs"] == outputs

    # The warm-up file replays against the model: one request per signature, batch of one.
    assert sorted(name for name, _ in result["warmup"]) == sorted(EXPECTED)
    dim = result["embedding_shape"][1]
    for name, shapes in result["warmup"]:
        assert all(shape[0] == 1 for shape in shapes.values()), (name, shapes)
        if "embedding" in shapes:
            assert shapes["embedding"] == [1, dim]

    assert result["rest_bytes_equal"] and result["rest_max_abs_diff"] < 1e-6
    assert result["embedding_shape"] == [n_images, dim]
    assert result["serving_default_vs_embed"] < 1e-5
    assert all(abs(s - 1.0) < 1e-4 for s in result["probability_sums"])
    if class_names is not None:
        assert [class_names[i] for i in result["class_ids"]] == result["class_names"]

    # One bad image fails the whole batch with a clear error; nothing crashes, no good image is lost.
    assert "Unknown image file format" in result["mixed_error"]
    assert result["after_error_max_abs_diff"] == 0.0
    assert result["client_indices"] == [0, 2]
    assert [i for i, _ in result["client_failed"]] == [1]
    assert "Unknown image file format" in result["client_failed"][0][1]
    assert result["client_max_abs_diff"] < 1e-5
    assert result["peak_rss_mb"] < 1500, "the serving process must stay under 1.5 GB resident"


def test_exported_model_contract(tmp_path):
    from tests.fakes.synthetic_model import build_synthetic_serving_model

    model_dir = build_synthetic_serving_model(str(tmp_path / "model"), class_names=("x", "y", "z"))
    images = write_images(tmp_path / "images", real=False)
    check_contract(probe(model_dir, images), n_images=2, class_names=["x", "y", "z"])


@pytest.mark.slow
def test_pushed_model_contract(smoke_run, tmp_path):
    model_dir = smoke_run["summary"]["serving_model_dir"]
    assert model_dir and os.path.isfile(os.path.join(model_dir, "saved_model.pb")), smoke_run["summary"]
    images = write_images(tmp_path / "images", real=True)
    n_images = len(os.listdir(images))
    check_contract(
        probe(model_dir, images), n_images=n_images, class_names=["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    )
