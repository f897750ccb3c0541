"""The small pieces around the Trainers: collapse gate, resumable checkpoints, history, baseline choice."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from components.evaluate.baseline_resolver import PreviousBlessedModelStrategy
from components.train.history import HistoryFile
from components.train.probe import build_linear_classifier, class_name_list
from components.train.simsiam import CollapseError, check_not_collapsed, checkpoint_dir


@pytest.mark.parametrize("value", [0.0, 0.3, None, math.nan])
def test_collapsed_or_missing_metric_fails_with_the_history_path(value) -> None:
    with pytest.raises(CollapseError, match=r"collapsed.*history is in /run/monitor_history.json"):
        check_not_collapsed(value, 0.5, "/run/monitor_history.json")


def test_healthy_metric_passes() -> None:
    check_not_collapsed(0.97, 0.5, "/run/monitor_history.json")  # no exception


def test_checkpoint_dir_depends_on_inputs_and_config_only() -> None:
    files, config = ["/t/Split-train/*"], {"epochs": 25, "base_lr": 0.06}
    assert checkpoint_dir("/root", files, config) == checkpoint_dir("/root", list(files), dict(config))
    assert checkpoint_dir("/root", files, config) != checkpoint_dir("/root", files, {**config, "epochs": 26})
    assert checkpoint_dir("/root", files, config) != checkpoint_dir("/root", ["/u/Split-train/*"], config)


def test_history_file_keeps_only_epochs_before_the_restored_one(tmp_path, capsys) -> None:
    path = tmp_path / "history.json"
    first = HistoryFile(str(path))
    first.on_train_begin()
    for epoch in range(3):
        first.on_epoch_end(epoch, {"loss": -0.1 * epoch})
    assert [e["epoch"] for e in json.loads(path.read_text())["epochs"]] == [0, 1, 2]

    resumed = HistoryFile(str(path), initial_epoch=2)  # a killed run restored at epoch 2: epoch 2 runs again
    resumed.on_train_begin()
    resumed.on_epoch_end(2, {"loss": -0.5})
    assert "resuming SimSiam training from checkpoint at epoch 2" in capsys.readouterr().out
    assert resumed.series() == {"loss": [0.0, -0.1, -0.5]}


def test_class_names_need_every_index() -> None:
    assert class_name_list({1: "b", 0: "a"}) == ["a", "b"]
    with pytest.raises(ValueError, match=r"class indices \[1\]"):
        class_name_list({0: "a", 2: "c"})


def test_served_classifier_is_the_benchmark_probe() -> None:
    """The Keras classifier the LinearProbeTrainer exports computes the very probe that
    `benchmarks.quality` scores with (`models.evaluation.fit_linear_probe`)."""
    from models.evaluation import fit_linear_probe, frozen_feature_scores

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    features = (rng.normal(size=(3, 4))[labels] + rng.normal(size=(300, 4))) * 3.0 + 5.0
    probe = fit_linear_probe(features[:200], labels[:200], num_classes=3)
    model = build_linear_classifier(probe)
    assert model.output_shape == (None, 3)
    standardised = model.get_layer("feature_standardisation")(features[:200].astype("float32")).numpy()
    np.testing.assert_allclose(standardised.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(standardised.std(axis=0), 1.0, atol=1e-3)
    logits = model.predict(features.astype("float32"), verbose=0)
    np.testing.assert_allclose(logits, probe.logits(features), rtol=1e-4, atol=1e-4)
    served_accuracy = np.mean(logits[200:].argmax(axis=1) == labels[200:])
    scores = frozen_feature_scores(features[:200], labels[:200], features[200:], labels[200:])
    assert served_accuracy == scores["linear_probe"]


def _artifacts(n_models: int, blessed: dict[int, bool]):
    from tfx.types import standard_artifacts

    models = []
    for i in range(1, n_models + 1):
        m = standard_artifacts.Model()
        m.id = i
        models.append(m)
    blessings = []
    for model_id, ok in blessed.items():
        b = standard_artifacts.ModelBlessing()
        b.id = 100 + model_id
        b.set_int_custom_property("current_model_id", model_id)
        b.set_int_custom_property("blessed", int(ok))
        blessings.append(b)
    return models, blessings


def test_baseline_is_the_latest_blessed_model_other_than_the_candidate() -> None:
    models, blessings = _artifacts(4, {1: True, 2: True, 3: False, 4: True})
    strategy = PreviousBlessedModelStrategy()
    # model 4 is this run's candidate (e.g. a cached re-run): the baseline is model 2, not itself
    out = strategy.resolve_artifacts(None, {"model": models, "model_blessing": blessings, "candidate": [models[3]]})
    assert [m.id for m in out["model"]] == [2] and [b.id for b in out["model_blessing"]] == [102]
    # a new candidate (5) is compared with the latest blessed one (4)
    new = _artifacts(5, {})[0][4]
    out = strategy.resolve_artifacts(None, {"model": models, "model_blessing": blessings, "candidate": [new]})
    assert [m.id for m in out["model"]] == [4]


def test_no_baseline_when_nothing_else_was_blessed() -> None:
    models, blessings = _artifacts(2, {1: False, 2: True})
    out = PreviousBlessedModelStrategy().resolve_artifacts(
        None, {"model": models, "model_blessing": blessings, "candidate": [models[1]]}
    )
    assert out["model"] == [] and out["model_blessing"] == []
