"""The serving client: TF Serving's REST JSON and gRPC protos, the three back ends, bad-input handling.

The model is a real serving SavedModel (the pipeline's Transform graph and `export_serving_model`, tiny
seeded weights) built once for this module; servers are the loopback stand-ins of
tests/fakes/tf_serving.py speaking TF Serving's REST JSON and gRPC PredictionService.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import threading

import numpy as np
import pytest
from PIL import Image, ImageOps

from serving import EmbeddingClient, InvalidInputError, ServingError, open_backend
from serving import rest_json as rj
from serving.backends import LocalBackend, RestBackend, resolve_model_dir, short_tf_message
from tests.fakes import tf_serving_protocol as protocol
from tests.fakes.images import bad_files, encode, make_image, special_images

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
CLASS_NAMES = ("a", "b", "c")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    from tests.fakes.synthetic_model import build_synthetic_serving_model

    return build_synthetic_serving_model(str(tmp_path_factory.mktemp("model") / "1"), class_names=CLASS_NAMES)


@pytest.fixture(scope="module")
def local(model_dir) -> LocalBackend:
    return LocalBackend(model_dir)


@pytest.fixture(scope="module")
def good_images() -> list[bytes]:
    return [encode(make_image((40 + 7 * i, 30 + 5 * i), seed=i), "JPEG" if i % 2 else "PNG") for i in range(5)]


def direct(local: LocalBackend, signature: str, images: list[bytes]) -> dict[str, np.ndarray]:
    """The signature called by name on the loaded SavedModel, no client code in between."""
    import tensorflow as tf

    out = local._model.signatures[signature](**{"images": tf.constant(images)})
    return {k: v.numpy() for k, v in out.items()}


# ---------------------------------------------------------------- REST JSON, by hand


def test_rest_body_row_and_columnar_format():
    images = [b"\xff\xd8\xff\x00", b"\x89PNG"]
    b64 = ["/9j/AA==", "iVBORw=="]  # base64 of the two byte strings, written out by hand
    assert rj.build_predict_body("embed_images", {"images": images}) == {
        "signature_name": "embed_images",
        "instances": [{"images": {"b64": b64[0]}}, {"images": {"b64": b64[1]}}],
    }
    assert rj.build_predict_body("embed_images", {"images": images}, row_format=False) == {
        "signature_name": "embed_images",
        "inputs": {"images": [{"b64": b64[0]}, {"b64": b64[1]}]},
    }


def test_rest_response_single_output_comes_bare_and_multi_output_named():
    single = rj.parse_predict_response({"predictions": [[1.0, 2.0], [3.0, 4.0]]}, ["embedding"])
    assert list(single) == ["embedding"]
    np.testing.assert_array_equal(single["embedding"], [[1.0, 2.0], [3.0, 4.0]])
    rows = rj.parse_predict_response(
        {
            "predictions": [
                {"class_ids": 2, "class_names": "roses", "probabilities": [0.1, 0.9]},
                {"class_ids": 0, "class_names": "daisy", "probabilities": [0.8, 0.2]},
            ]
        },
        ["class_ids"],
    )
    np.testing.assert_array_equal(rows["class_ids"], [2, 0])
    assert rows["class_names"].tolist() == [b"roses", b"daisy"]
    columns = rj.parse_predict_response({"outputs": {"class_ids": [1], "x_bytes": [{"b64": "AAE="}]}}, [])
    assert columns["x_bytes"].tolist() == [b"\x00\x01"]
    bare_columns = rj.parse_predict_response({"outputs": [[0.5]]}, ["embedding"])
    np.testing.assert_array_equal(bare_columns["embedding"], [[0.5]])
    with pytest.raises(rj.RestFormatError, match="decode failed"):
        rj.parse_predict_response({"error": "decode failed"}, ["embedding"])
    with pytest.raises(rj.RestFormatError, match="unnamed output"):
        rj.parse_predict_response({"predictions": [[1.0]]}, ["probabilities", "class_ids"])


def test_rest_request_decoding_follows_tf_serving_rules():
    named = {"signature_name": "s", "instances": [{"images": {"b64": "AAE="}}, {"images": {"b64": "Ag=="}}]}
    assert protocol.decode_predict_body(json.dumps(named), ["images"])[1]["images"].tolist() == [b"\x00\x01", b"\x02"]
    bare_rows = {"instances": [{"b64": "AAE="}]}  # one input: rows may be the bare value
    signature, inputs = protocol.decode_predict_body(bare_rows, ["images"])
    assert signature == "serving_default" and inputs["images"].tolist() == [b"\x00\x01"]
    assert protocol.decode_predict_body({"inputs": [{"b64": "Ag=="}]}, ["images"])[1]["images"].tolist() == [b"\x02"]
    assert protocol.decode_predict_body({"inputs": {"images": ["text"]}}, ["images"])[1]["images"].tolist() == [b"text"]
    for body, phrase in [
        ({"instances": [], "inputs": {}}, "exactly one of"),
        ({"instances": [{"b64": "not base64!"}]}, "bad value"),
        ({"instances": [{"pictures": {"b64": "AA=="}}]}, "unknown input"),
        ({"instances": [{"images": {"b64": "AA=="}}, {}]}, "same named inputs"),
        ("{not json", "not JSON"),
    ]:
        with pytest.raises(rj.RestFormatError, match=phrase):
            protocol.decode_predict_body(body, ["images"])


def test_rest_response_encoding_follows_tf_serving_rules():
    assert protocol.encode_predict_response({"embedding": np.array([[1.5], [2.0]])}, row_format=True) == {
        "predictions": [[1.5], [2.0]]
    }
    two = {"class_ids": np.array([3]), "class_names": np.array([b"tulips"], dtype=object)}
    assert protocol.encode_predict_response(two, row_format=True) == {
        "predictions": [{"class_ids": 3, "class_names": "tulips"}]
    }
    assert protocol.encode_predict_response(two, row_format=False) == {
        "outputs": {"class_ids": [3], "class_names": ["tulips"]}
    }
    assert protocol.encode_predict_response({"thumb_bytes": np.array([b"\x00\x01"], dtype=object)}, False) == {
        "outputs": [{"b64": "AAE="}]
    }


# ---------------------------------------------------------------- round trips through the real model


@pytest.mark.parametrize("row_format", [True, False])
@pytest.mark.parametrize("signature", ["embed_images", "classify_images"])
def test_rest_round_trip_through_the_saved_model(local, good_images, signature, row_format):
    from serving.client import SIGNATURE_OUTPUTS

    body = json.loads(json.dumps(rj.build_predict_body(signature, {"images": good_images}, row_format)))
    name, inputs = protocol.decode_predict_body(body, local.input_names(signature))
    assert name == signature and inputs["images"].tolist() == good_images  # bytes survive base64 exactly
    outputs = local.predict(name, inputs)
    answer = json.loads(json.dumps(protocol.encode_predict_response(outputs, row_format)))
    parsed = rj.parse_predict_response(answer, SIGNATURE_OUTPUTS[signature])
    expected = direct(local, signature, good_images)
    assert sorted(parsed) == sorted(expected)
    for key, value in expected.items():
        if value.dtype == object:
            assert parsed[key].tolist() == value.tolist()
        else:
            np.testing.assert_allclose(parsed[key], value, rtol=1e-6)


def test_grpc_request_and_response_protos(local, good_images):
    from tensorflow.core.framework import types_pb2
    from tensorflow_serving.apis import predict_pb2

    from serving import grpc_protos

    request = grpc_protos.build_predict_request(
        "simsiam", "embed_images", {"images": np.array(good_images, dtype=object)}, version=3
    )
    request = predict_pb2.PredictRequest.FromString(request.SerializeToString())  # over the wire
    assert (request.model_spec.name, request.model_spec.signature_name) == ("simsiam", "embed_images")
    assert request.model_spec.version.value == 3
    tensor = request.inputs["images"]
    assert tensor.dtype == types_pb2.DT_STRING
    assert [d.size for d in tensor.tensor_shape.dim] == [len(good_images)]
    assert list(tensor.string_val) == good_images
    outputs = local.predict("embed_images", protocol.request_inputs(request))
    response = protocol.build_predict_response(outputs, "simsiam", "embed_images")
    response = predict_pb2.PredictResponse.FromString(response.SerializeToString())
    parsed = grpc_protos.parse_predict_response(response)
    np.testing.assert_array_equal(parsed["embedding"], direct(local, "embed_images", good_images)["embedding"])


# ---------------------------------------------------------------- client behaviour


class CountingBackend:
    """The real local back end, counting the requests it serves."""

    def __init__(self, inner: LocalBackend):
        self.inner, self.batches, self.description = inner, [], inner.description

    def predict(self, signature, inputs, output_names):
        self.batches.append(len(next(iter(inputs.values()))))
        return self.inner.predict(signature, inputs, output_names)

    def close(self):
        pass


def test_bad_bytes_in_a_batch_cost_no_good_image(local, good_images):
    values = [good_images[0], b"garbage", good_images[1], good_images[2], b"", good_images[3]]
    counting = CountingBackend(local)
    result = EmbeddingClient(counting, batch_size=8, validate=False).embed(values)
    assert result.indices == [0, 2, 3, 5]
    assert [i for i, _ in result.failed] == [1, 4]
    assert all(reason.startswith("rejected by the model:") for _, reason in result.failed)
    assert "Unknown image file format" in result.failed[0][1]
    one_by_one = np.concatenate([direct(local, "embed_images", [values[i]])["embedding"] for i in result.indices])
    np.testing.assert_allclose(result["embedding"], one_by_one, rtol=1e-5, atol=1e-6)
    assert counting.batches[0] == 6 and len(counting.batches) < 2 * len(values)  # bisection, not 1 call per item


def test_pillow_validation_reports_before_sending(local, good_images):
    bad = bad_files()
    names = [n for n in bad if n != "notes.txt"]
    values = [bad[n][0] for n in names] + good_images[:2]
    counting = CountingBackend(local)
    result = EmbeddingClient(counting).embed(values)
    assert result.indices == [len(names), len(names) + 1]
    assert counting.batches == [2]  # only the valid images went to the model
    for (position, reason), name in zip(result.failed, names):
        assert bad[name][1].lower() in reason.lower(), (name, reason)
        assert position == names.index(name)


def test_unusual_but_valid_images_all_embed(local):
    values = list(special_images().values())
    result = EmbeddingClient(local).embed(values)
    assert result.failed == [] and result.indices == list(range(len(values)))
    assert np.all(np.isfinite(result["embedding"]))


def test_classify_and_batching(local, good_images):
    counting = CountingBackend(local)
    result = EmbeddingClient(counting, batch_size=2).classify(good_images)
    assert counting.batches == [2, 2, 1]
    expected = direct(local, "classify_images", good_images)
    np.testing.assert_array_equal(result["class_ids"], expected["class_ids"])
    assert result["class_names"].tolist() == [CLASS_NAMES[i].encode() for i in expected["class_ids"]]


def test_a_short_answer_is_an_error_not_a_silent_drop(local, good_images):
    class DropsARow(CountingBackend):  # what a broken server might do
        def predict(self, signature, inputs, output_names):
            return {k: v[:-1] for k, v in super().predict(signature, inputs, output_names).items()}

    with pytest.raises(ServingError, match="1 rows for 2 inputs"):
        EmbeddingClient(DropsARow(local)).embed(good_images[:2])


# ---------------------------------------------------------------- end to end over loopback servers


@pytest.fixture(scope="module")
def servers(local):
    from tests.fakes.tf_serving import make_grpc_server, make_rest_server

    rest = make_rest_server(local, "simsiam")
    thread = threading.Thread(target=rest.serve_forever, daemon=True)
    thread.start()
    grpc_server, grpc_port = make_grpc_server(local, "simsiam")
    yield {
        "rest": f"http://127.0.0.1:{rest.server_port}/v1/models/simsiam",
        "grpc": f"grpc://127.0.0.1:{grpc_port}/simsiam",
    }
    rest.shutdown()
    grpc_server.stop(grace=None)


@pytest.mark.parametrize("kind", ["rest", "grpc"])
def test_remote_back_ends_match_the_local_model(servers, local, good_images, kind):
    backend = open_backend(servers[kind], timeout=30)
    values = [good_images[0], b"not an image at all", good_images[1]]
    result = EmbeddingClient(backend, validate=False).embed(values)  # the bad bytes reach the server
    assert result.indices == [0, 2]
    assert result.failed[0][0] == 1 and "Unknown image file format" in result.failed[0][1]
    expected = direct(local, "embed_images", [good_images[0], good_images[1]])["embedding"]
    np.testing.assert_allclose(result["embedding"], expected, rtol=1e-5, atol=1e-6)
    classes = EmbeddingClient(backend).classify(good_images)  # the server survived the bad request
    np.testing.assert_array_equal(classes["class_ids"], direct(local, "classify_images", good_images)["class_ids"])
    backend.close()


def test_rest_errors_are_typed(servers):
    backend = RestBackend(servers["rest"])
    with pytest.raises(InvalidInputError, match="Unknown image file format"):
        backend.predict("embed_images", {"images": np.array([b"xx"], dtype=object)}, ["embedding"])
    with pytest.raises(ServingError, match="HTTP 404"):
        RestBackend(servers["rest"].replace("simsiam", "other")).predict(
            "embed_images", {"images": np.array([b"xx"], dtype=object)}, ["embedding"]
        )


def test_unreachable_server_is_a_serving_error_not_bad_input(good_images):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for spec in (f"http://127.0.0.1:{port}/v1/models/m", f"grpc://127.0.0.1:{port}/m"):
        backend = open_backend(spec, timeout=5)
        with pytest.raises(ServingError) as info:
            EmbeddingClient(backend).embed(good_images[:1])
        assert not isinstance(info.value, InvalidInputError)


def test_local_server_refuses_non_loopback(local):
    from tests.fakes.tf_serving import make_rest_server

    with pytest.raises(ValueError, match="loopback"):
        make_rest_server(local, "simsiam", host="0.0.0.0")


# ---------------------------------------------------------------- opening back ends


def test_open_backend_specs(model_dir, tmp_path):
    assert resolve_model_dir(os.path.dirname(model_dir)) == model_dir  # versions folder -> highest version
    rest = open_backend("http://localhost:8501/v1/models/simsiam/versions/7:predict")
    assert rest.predict_url == "http://localhost:8501/v1/models/simsiam/versions/7:predict"
    grpc_backend = open_backend("grpc://localhost/simsiam")
    assert (grpc_backend.target, grpc_backend.model_name, grpc_backend.version) == ("localhost:8500", "simsiam", None)
    grpc_backend.close()
    with pytest.raises(ServingError, match="model name"):
        open_backend("http://localhost:8501/")
    with pytest.raises(ServingError, match="neither a SavedModel folder"):
        open_backend(str(tmp_path / "missing"))
    with pytest.raises(ServingError, match="no saved_model.pb"):
        open_backend(str(tmp_path))


def test_short_tf_message():
    raw = (
        "Graph execution error:\n\nDetected at node map/while/decode_image/DecodeImage defined at (most recent "
        "call last):\n<stack traces unavailable>\nUnknown image file format. One of JPEG, PNG, GIF, BMP required.\n"
        "\t [[{{node map/while/decode_image/DecodeImage}}]] [Op:__inference_signature_wrapper_embed_images_746]"
    )
    assert short_tf_message(raw) == "Unknown image file format. One of JPEG, PNG, GIF, BMP required."
    assert base64.b64decode("/9j/AA==") == b"\xff\xd8\xff\x00"  # the hand-written value used above


# ---------------------------------------------------------------- what a person sees is what the model sees


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _upright() -> np.ndarray:
    """An asymmetric picture (48 wide, 32 high): rotated or mirrored, it embeds differently."""
    y, x = np.mgrid[0:32, 0:48]
    pixels = np.stack([x * 5, y * 7, np.where((x < 16) & (y < 12), 250, 30)], -1)
    pixels[20:28, 30:44] = (255, 255, 0)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def displayed_pairs() -> dict[str, tuple[bytes, bytes]]:
    """{case: (file A, file B)}: two files every viewer shows the same, stored differently."""
    upright = _upright()
    pairs = {}
    for orientation in (3, 6, 8):
        # The stored pixels are the inverse transform of the picture, so that the tag brings it upright.
        # Tag 6 shows the stored pixels turned 90 degrees clockwise, so they are the picture turned counter-
        # clockwise (np.rot90 k=1); tag 8 the other way round (k=3); tag 3 upside down (k=2).
        stored = np.rot90(upright, {3: 2, 6: 1, 8: 3}[orientation])
        # Quality 100 without chroma subsampling: JPEG's own loss is not rotation-invariant (its quantisation
        # tables differ across and along), and this test is about the orientation, not the compression.
        tagged = encode(
            Image.fromarray(np.ascontiguousarray(stored)), "JPEG", quality=100, subsampling=0, exif=_exif(orientation)
        )
        shown = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(tagged))), dtype=int)
        assert np.abs(shown - upright).mean() < 2  # Pillow, the reference viewer, shows it upright
        pairs[f"exif_{orientation}"] = (encode(Image.fromarray(upright), "JPEG", quality=100, subsampling=0), tagged)
    y, x = np.mgrid[0:40, 0:40]
    disc = (x - 20) ** 2 + (y - 14) ** 2 < 120
    rgba = [np.zeros((40, 40, 4), np.uint8) for _ in range(2)]
    rgba[1][..., :3] = 255  # hidden white under alpha 0, the other hides black
    for image in rgba:
        image[disc] = (180, 30, 60, 255)
    pairs["alpha"] = tuple(encode(Image.fromarray(image, "RGBA"), "PNG") for image in rgba)
    return pairs


def _example(image: bytes) -> bytes:
    import tensorflow as tf

    feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_files_that_display_the_same_embed_and_classify_the_same(local):
    pairs = displayed_pairs()
    for case, (a, b) in pairs.items():
        embed = direct(local, "embed_images", [a, b])["embedding"]
        assert _cosine(embed[0], embed[1]) > 0.999, case
        classes = direct(local, "classify_images", [a, b])
        assert _cosine(*classes["probabilities"]) > 0.999 and classes["class_ids"][0] == classes["class_ids"][1], case
        default_embed = local.predict(
            "serving_default", {"examples": np.array([_example(a), _example(b)], object)}, ["embedding"]
        )["embedding"]
        assert _cosine(default_embed[0], default_embed[1]) > 0.999, case
        np.testing.assert_allclose(default_embed, embed, atol=1e-5)
    # The test can fail: the sideways pixels (the tag ignored, as before) embed visibly differently.
    stored = encode(Image.fromarray(np.ascontiguousarray(np.rot90(_upright(), 1))), "JPEG", quality=100, subsampling=0)
    embed = direct(local, "embed_images", [pairs["exif_6"][0], stored])["embedding"]
    assert _cosine(embed[0], embed[1]) < 0.999


def test_index_embeddings_and_thumbnails_show_what_a_person_sees(model_dir, tmp_path):
    """The EmbeddingIndexer's build_index on tf.Examples holding each pair: equal embeddings, thumbnails."""
    import tensorflow as tf

    from components.index.embedding_index import build_index
    from components.ingest.executor import make_example

    pairs = displayed_pairs()
    split = tmp_path / "Split-train"
    split.mkdir()
    with tf.io.TFRecordWriter(str(split / "data.gz"), options="GZIP") as writer:
        for case, files in pairs.items():
            for i, data in enumerate(files):
                writer.write(make_example(f"{case}/{i}.img", "a", 0, data).SerializeToString())
    index, report = build_index(model_dir, str(tmp_path), {"train": str(split)}, thumbnail_size=16)
    assert not report["failed"] and len(index) == 2 * len(pairs)
    for row in range(0, len(index), 2):
        assert _cosine(index.embeddings[row], index.embeddings[row + 1]) > 0.999, index.paths[row]
        diff = np.abs(index.thumbnails[row].astype(int) - index.thumbnails[row + 1].astype(int)).mean()
        assert diff < 4, (index.paths[row], diff)  # JPEG noise only; sideways would differ by ~50
    assert (index.thumbnails[-1][0, 0] == 255).all()  # alpha case: the corner is white background


def test_decompression_bomb_is_refused_from_its_header_in_every_signature(local, good_images):
    from tests.fakes.images import png_with_header_size

    bomb = png_with_header_size(20000, 20000)
    for signature in ("embed_images", "classify_images", "serving_default"):
        values = (
            [_example(v) for v in (good_images[0], bomb)] if signature == "serving_default" else [good_images[0], bomb]
        )
        result = EmbeddingClient(local, validate=False).predict(signature, values)
        assert result.indices == [0]
        assert [i for i, _ in result.failed] == [1]
        assert "image size 20000x20000 px is outside the limits" in result.failed[0][1], result.failed
