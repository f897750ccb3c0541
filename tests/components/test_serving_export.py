"""The serving export without a classifier (a run on unlabelled images): two signatures, matching warm-up."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

tf = pytest.importorskip("tensorflow")

SIZE = 16


def _png(rng, height: int, width: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def embedding_only_model(tmp_path_factory):
    """(SavedModel folder, signatures returned): the pipeline's Transform graph (TFT on 4 generated images, no
    classes needed) and a tiny seeded encoder, exported by `export_serving_model` with no classifier."""
    import keras
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    from components import features as F
    from components import transform as T
    from components.examples import RAW_FEATURES
    from components.export.serving_model import export_serving_model

    tmp = tmp_path_factory.mktemp("embedding_only")
    rng = np.random.default_rng(0)
    # Today's Transform reads label and class_name too; the serving graph feeds it `image` only.
    rows = [
        {F.IMAGE: [_png(rng, 20 + 3 * i, 24)], F.LABEL: [0], F.CLASS_NAME: [b"x"], F.IMAGE_ID: [b"%d" % i]}
        for i in range(4)
    ]
    # SchemaGen(infer_feature_shape=True) gives the raw features shape [1], hence the [1] here.
    spec = {name: tf.io.FixedLenFeature([1], tf.as_dtype(dtype)) for name, dtype in RAW_FEATURES.items()}
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    with tft_beam.Context(temp_dir=str(tmp / "tft_tmp")):
        transform_fn = (rows, metadata) | tft_beam.AnalyzeDataset(
            lambda inputs: T.preprocessing_fn(inputs, {"stored_size": SIZE})
        )
        _ = transform_fn | tft_beam.WriteTransformFn(str(tmp / "transform"))
    pixels = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(
        8, 3, strides=2, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed=0)
    )(pixels)
    encoder = keras.Model(pixels, keras.layers.GlobalAveragePooling2D()(x))
    path = str(tmp / "model")
    signatures = export_serving_model(path, tft.TFTransformOutput(str(tmp / "transform")), encoder, stored_size=SIZE)
    return path, signatures


def test_embedding_only_export_has_exactly_the_embedding_signatures(embedding_only_model):
    path, signatures = embedding_only_model
    model = tf.saved_model.load(path)
    assert set(model.signatures) == {"serving_default", "embed_images"} == set(signatures)
    for name in signatures:
        assert set(model.signatures[name].structured_outputs) == {"embedding"}


def test_serving_default_and_embed_images_give_the_same_embedding(embedding_only_model):
    from components.export.warmup import synthetic_example, synthetic_jpeg

    model = tf.saved_model.load(embedding_only_model[0])
    images = [synthetic_jpeg(SIZE), _png(np.random.default_rng(1), 30, 18)]
    embedded = model.signatures["embed_images"](images=tf.constant(images))["embedding"].numpy()
    served = model.signatures["serving_default"](examples=tf.constant([synthetic_example(i) for i in images]))[
        "embedding"
    ].numpy()
    assert embedded.shape == (2, 8) and np.all(np.isfinite(embedded))
    np.testing.assert_allclose(served, embedded, rtol=1e-6, atol=1e-6)
    assert not np.allclose(embedded[0], embedded[1])  # two different images, two different rows
    empty = model.signatures["embed_images"](images=tf.constant([], tf.string))["embedding"]
    assert empty.shape == (0, 8)


def test_the_warmup_file_requests_only_the_signatures_the_model_has(embedding_only_model):
    from tensorflow_serving.apis import prediction_log_pb2

    from components.export.warmup import WARMUP_DIR, WARMUP_FILE

    path = f"{embedding_only_model[0]}/{WARMUP_DIR}/{WARMUP_FILE}"
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path)]
    requested = sorted(log.predict_log.request.model_spec.signature_name for log in logs)
    assert requested == ["embed_images", "serving_default"]
    model = tf.saved_model.load(embedding_only_model[0])
    for log in logs:  # each replays, as TF Serving does at load time
        request = log.predict_log.request
        ((name, proto),) = request.inputs.items()
        out = model.signatures[request.model_spec.signature_name](**{name: tf.make_ndarray(proto)})
        assert out["embedding"].shape == (1, 8)


def test_a_classifier_without_class_names_is_rejected():
    from components.export.serving_model import export_serving_model
    from components.export.warmup import warmup_logs

    with pytest.raises(ValueError, match="both classifier and class_names"):
        export_serving_model("unused", None, None, classifier=object(), stored_size=SIZE)
    with pytest.raises(ValueError, match="stored_size"):
        export_serving_model("unused", None, None)
    with pytest.raises(ValueError, match=r"no warm-up request for signature\(s\) \['predict'\]"):
        warmup_logs(SIZE, ["embed_images", "predict"])
    assert [log.predict_log.request.model_spec.signature_name for log in warmup_logs(SIZE)] == [
        "embed_images",
        "classify_images",
        "serving_default",
    ]


def test_the_embed_and_search_client_works_and_classify_names_the_missing_signature(embedding_only_model):
    """`simsiam-tfx embed` / `search` and the EmbeddingIndexer call `EmbeddingClient.embed` (`embed_images`)."""
    from serving import EmbeddingClient
    from serving.backends import LocalBackend, ServingError

    backend = LocalBackend(embedding_only_model[0])
    images = [_png(np.random.default_rng(2), 20, 20), b"not an image", _png(np.random.default_rng(3), 25, 17)]
    result = EmbeddingClient(backend).embed(images)
    assert result.indices == [0, 2] and result["embedding"].shape == (2, 8)
    assert [i for i, _ in result.failed] == [1]
    with pytest.raises(ServingError, match="has no signature 'classify_images'"):
        EmbeddingClient(backend).classify(images[:1])
