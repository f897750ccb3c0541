"""TFX Trainer `run_fn` for the linear probe: frozen SimSiam encoder + one Dense layer.

Features are computed once with the frozen encoder (on `eval_view`, the one evaluation view), batch
by batch as the examples stream in, for a class-stratified sample of at most `sample_size` images of
each split chosen by a hash of the image id (components/examples.py; the default covers Flowers
whole), so memory holds features, never a split of images; scoring every eval image is the
Evaluator's job. The classifier is `models.evaluation.fit_linear_probe` (standardised features, L2-regularised
logistic regression, deterministic), the same fit that `benchmarks.quality` reports. Its numbers
are copied into a Keras standardisation + Dense layer, so the exported model is exactly
encoder -> that probe, and TFMA gates what is served.
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import FnArgs

from components import examples
from components import features as F
from components.export.serving_model import export_serving_model
from components.train.encoder_io import load_encoder
from models.evaluation import LinearProbe, fit_linear_probe
from models.monitors import embed


def build_linear_classifier(probe: LinearProbe) -> keras.Model:
    """The fitted `probe` as a Keras model: float features `[B, F]` -> logits `[B, C]` (float32)."""
    features, num_classes = probe.weights.shape
    norm = keras.layers.Normalization(mean=probe.mean.astype("float32"),
                                      variance=np.square(probe.std).astype("float32"),
                                      name="feature_standardisation")  # fmt: skip
    dense = keras.layers.Dense(num_classes, name="logits")
    model = keras.Sequential([keras.Input((features,)), norm, dense], name="linear_probe")
    dense.set_weights([probe.weights.astype("float32"), probe.bias.astype("float32")])
    return model


def class_name_list(names: dict[int, str]) -> list[str]:
    missing = sorted(set(range(max(names) + 1)) - set(names))
    if missing:
        raise ValueError(f"class indices {missing} never appear in the data: cannot name them")
    return [names[i] for i in range(len(names))]


def embedded_sample(
    dataset_factory, file_patterns, encoder: keras.Model, size: int, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """(features float32 `[M, F]`, int64 labels `[M]`, {label: class name}) of a class-stratified sample of at
    most `size` examples of a split (`examples.stratified_ids`, by image id hash), in file order.

    Two streaming passes: ids and labels first (to choose the sample), then the stored images of the
    chosen ids, embedded `batch_size` at a time (`models.monitors.embed`); memory holds the features."""
    ids, labels = examples.ids_and_labels(dataset_factory, file_patterns)
    chosen = examples.stratified_ids(ids, labels.tolist(), size)
    schema = examples.feature_schema(
        {F.IMAGE_U8: "string", F.IMAGE_ID: "string", F.LABEL: "int64", F.CLASS_NAME: "string"}
    )
    features, kept, names, pending = [], [], {}, []

    def flush() -> None:
        if pending:
            features.append(embed(encoder, np.stack(pending), batch_size=batch_size))
            pending.clear()

    for batch in examples.numpy_batches(dataset_factory, file_patterns, schema):
        names.update({int(v): n.decode() for v, n in zip(batch[F.LABEL], batch[F.CLASS_NAME])})
        for image_id, image, label in zip(batch[F.IMAGE_ID], batch[F.IMAGE_U8], batch[F.LABEL]):
            if image_id.decode() in chosen:
                pending.append(examples.stored_image(image))
                kept.append(int(label))
        if len(pending) >= batch_size:
            flush()
    flush()
    if not features:
        raise ValueError(f"no example in {file_patterns}: nothing to fit or score the probe on")
    return np.concatenate(features), np.asarray(kept, np.int64), names


def run_fn(fn_args: FnArgs) -> None:
    custom = fn_args.custom_config or {}
    encoder, recipe = load_encoder(fn_args.base_model)
    encoder.trainable = False

    read = fn_args.data_accessor.tf_dataset_factory
    size = int(custom["sample_size"])  # set by create_pipeline from RunConfig.sample_size
    train_f, train_y, train_names = embedded_sample(read, fn_args.train_files, encoder, size)
    eval_f, eval_y, eval_names = embedded_sample(read, fn_args.eval_files, encoder, size)
    class_names = class_name_list({**eval_names, **train_names})

    iterations = int(custom["probe_epochs"])  # set by create_pipeline from RunConfig.probe_epochs
    probe = fit_linear_probe(train_f, train_y, len(class_names), iterations=iterations)
    weight_decay = probe.weight_decay
    final = {"accuracy": float(np.mean(probe.predict(train_f) == train_y)),
             "val_accuracy": float(np.mean(probe.predict(eval_f) == eval_y))}  # fmt: skip
    print(
        f"[probe] logistic regression ({iterations} full-batch epochs, weight decay {weight_decay} chosen by "
        f"{len(probe.cv_accuracy)}-value cross-validation on the train split) on "
        f"{len(train_f)} frozen features: train accuracy {final['accuracy']:.4f}, "
        f"eval accuracy {final['val_accuracy']:.4f}",
        flush=True,
    )

    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    classifier = build_linear_classifier(probe)
    export_serving_model(fn_args.serving_model_dir, tft_output, encoder, classifier, class_names, recipe["stored_size"])
    os.makedirs(fn_args.model_run_dir, exist_ok=True)
    with open(os.path.join(fn_args.model_run_dir, F.PROBE_HISTORY_FILE), "w") as f:
        json.dump({"final": final, "class_names": class_names, "iterations": iterations,
                   "weight_decay": weight_decay, "cv_accuracy": {str(k): v for k, v in probe.cv_accuracy.items()}},
                  f, indent=2)  # fmt: skip
