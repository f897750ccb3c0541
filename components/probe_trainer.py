"""TFX Trainer `run_fn` for the linear probe: frozen SimSiam encoder + one Dense layer.

Features are computed once with the frozen encoder; the classifier is a
standardisation (fitted on the train features) followed by a linear layer, so
the exported model is exactly encoder -> linear classifier.
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import tensorflow_transform as tft
from tfx import v1 as tfx

from components import trainer_data
from components.encoder_io import load_encoder
from components.export import export_serving_model
from models.monitors import embed


def build_linear_classifier(features: np.ndarray, num_classes: int) -> keras.Model:
    norm = keras.layers.Normalization(name="feature_standardisation")
    norm.adapt(features)
    return keras.Sequential(
        [keras.Input((features.shape[1],)), norm, keras.layers.Dense(num_classes, name="logits")],
        name="linear_probe",
    )


def class_name_list(names: dict[int, str]) -> list[str]:
    missing = sorted(set(range(max(names) + 1)) - set(names))
    if missing:
        raise ValueError(f"class indices {missing} never appear in the data: cannot name them")
    return [names[i] for i in range(len(names))]


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    custom = fn_args.custom_config or {}
    encoder, recipe = load_encoder(fn_args.base_model)
    encoder.trainable = False
    size = recipe["image_size"]

    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    train_x, train_y, train_names = trainer_data.load_split(fn_args.train_files, tft_output, size)
    eval_x, eval_y, eval_names = trainer_data.load_split(fn_args.eval_files, tft_output, size)
    class_names = class_name_list({**eval_names, **train_names})

    train_f, eval_f = embed(encoder, train_x), embed(encoder, eval_x)
    keras.utils.set_random_seed(int(custom.get("seed", 0)))
    classifier = build_linear_classifier(train_f, len(class_names))
    classifier.compile(
        optimizer=keras.optimizers.Adam(1e-3, weight_decay=float(custom.get("probe_weight_decay", 1e-4))),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    epochs = int(custom.get("probe_epochs", 100))
    history = classifier.fit(train_f, train_y, validation_data=(eval_f, eval_y), epochs=epochs,
                             batch_size=256, verbose=0)
    final = {k: float(v[-1]) for k, v in history.history.items()}
    print(f"[probe] {epochs} epochs on {len(train_f)} frozen features: {final}", flush=True)

    export_serving_model(fn_args.serving_model_dir, tft_output, encoder, classifier, class_names, size)
    os.makedirs(fn_args.model_run_dir, exist_ok=True)
    with open(os.path.join(fn_args.model_run_dir, "probe_history.json"), "w") as f:
        json.dump({"final": final, "class_names": class_names, "history": history.history}, f, indent=2)
