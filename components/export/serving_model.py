"""The serving SavedModel: Transform graph + frozen encoder (+ linear classifier when there are labels).

Signatures (TF Serving calls them by name). With a classifier (a labelled run, the probe Trainer):
- serving_default(examples)  -> embedding, probabilities, class_ids
- embed_images(images)       -> embedding
- classify_images(images)    -> probabilities, class_ids, class_names
Without one (a run on unlabelled images: no classes to name, components/evaluate/label_free.py gates it):
- serving_default(examples)  -> embedding
- embed_images(images)       -> embedding
`images` are encoded JPEG/PNG bytes; `examples` are serialized tf.Examples with
an `image` bytes feature. Decoding and resizing run in the Transform graph.
`simsiam-tfx embed` / `search` and the EmbeddingIndexer use `embed_images` only, so they work with both.
"""

from __future__ import annotations

import keras
import tensorflow as tf
import tensorflow_transform as tft

from components import features as F
from components.export.warmup import write_warmup_requests
from models.augment import eval_view

EMBEDDING_SIGNATURES = ("serving_default", "embed_images")
CLASSIFIER_SIGNATURES = (*EMBEDDING_SIGNATURES, "classify_images")


def export_serving_model(
    path: str,
    tft_output: tft.TFTransformOutput,
    encoder: keras.Model,
    classifier: keras.Model | None = None,
    class_names: list[str] | None = None,
    stored_size: int | None = None,
) -> tuple[str, ...]:
    """Writes the serving SavedModel to `path`: raw bytes -> Transform graph (stored uint8
    `[B, T, T, 3]`, T = `stored_size`) -> `eval_view` at the encoder's input size -> encoder ->
    linear classifier (when given), with the signatures above and TF Serving warm-up requests for
    exactly those signatures. Returns the signature names written.

    `classifier`: Keras model from embeddings `[B, D]` to logits `[B, C]`, with `class_names` (C
    strings); both None for an embedding-only model. `stored_size` is required (keyword or 6th
    positional argument, the probe Trainer's order). Raises ValueError when only one of
    `classifier` / `class_names` is given or `stored_size` is missing.
    """
    if stored_size is None:
        raise ValueError("stored_size (the Transform's stored image size T) is required")
    if (classifier is None) != (class_names is None):
        raise ValueError("give both classifier and class_names (a labelled model) or neither (embedding only)")
    with_classifier = classifier is not None
    image_size = int(encoder.input_shape[1])
    tft_layer = tft_output.transform_features_layer()
    names = tf.constant(class_names if with_classifier else [""])

    def images_u8(images: tf.Tensor) -> tf.Tensor:
        transformed = tft_layer({F.IMAGE: tf.reshape(images, [-1, 1])})
        return tf.map_fn(
            lambda s: tf.ensure_shape(tf.io.parse_tensor(s, tf.uint8), [stored_size, stored_size, 3]),
            tf.reshape(transformed[F.IMAGE_U8], [-1]),
            fn_output_signature=tf.TensorSpec([stored_size, stored_size, 3], tf.uint8),
        )

    feature_dim = int(encoder.output_shape[-1])
    num_classes = len(class_names) if with_classifier else 0

    def heads(images: tf.Tensor) -> dict[str, tf.Tensor]:
        # An empty request gets empty answers (the encoder's kernels reject zero-sized batches).
        return tf.cond(tf.size(images) > 0, lambda: run_heads(images), empty_heads)

    def empty_heads() -> dict[str, tf.Tensor]:
        out = {"embedding": tf.zeros([0, feature_dim])}
        if with_classifier:
            out.update(
                probabilities=tf.zeros([0, num_classes]),
                class_ids=tf.zeros([0], tf.int64),
                class_names=tf.zeros([0], tf.string),
            )
        return out

    def run_heads(images: tf.Tensor) -> dict[str, tf.Tensor]:
        pixels = eval_view(images_u8(images), image_size)
        embedding = tf.cast(encoder(pixels, training=False), tf.float32)
        if not with_classifier:
            return {"embedding": embedding}
        probabilities = tf.nn.softmax(tf.cast(classifier(embedding, training=False), tf.float32), axis=-1)
        class_ids = tf.argmax(probabilities, axis=-1)
        return {
            "embedding": embedding,
            "probabilities": probabilities,
            "class_ids": class_ids,
            "class_names": tf.gather(names, class_ids),
        }

    def serving_default(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        parsed = tf.io.parse_example(examples, {F.IMAGE: tf.io.FixedLenFeature([], tf.string)})
        out = heads(parsed[F.IMAGE])
        return {k: out[k] for k in ("embedding", "probabilities", "class_ids") if k in out}

    def embed_images(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"embedding": heads(images)["embedding"]}

    def classify_images(images: tf.Tensor) -> dict[str, tf.Tensor]:
        out = heads(images)
        return {k: out[k] for k in ("probabilities", "class_ids", "class_names")}

    archive = keras.export.ExportArchive()
    archive.track(encoder)
    if with_classifier:
        archive.track(classifier)
    archive.track(tft_layer)
    archive.add_endpoint(
        "serving_default", serving_default, input_signature=[tf.TensorSpec([None], tf.string, name="examples")]
    )
    image_endpoints = [("embed_images", embed_images)]
    if with_classifier:
        image_endpoints.append(("classify_images", classify_images))
    for name, fn in image_endpoints:
        archive.add_endpoint(name, fn, input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    archive.write_out(path, verbose=False)
    signatures = CLASSIFIER_SIGNATURES if with_classifier else EMBEDDING_SIGNATURES
    # TF Serving replays these before it marks the model ready; a request for a missing signature
    # would fail the load, so only the signatures written get one.
    write_warmup_requests(path, stored_size, signatures)
    return signatures
