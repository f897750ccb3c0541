"""LabelFreeEvaluator: the decision rule, and the component run for real on hand-made artifacts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from components.evaluate.label_free import BASELINE_TOLERANCE, label_free_decision
from tests.fakes.transformed import write_transformed_file

THRESHOLDS = {"min_encoder_spread": 0.3, "min_rank_ratio": 1.5}
HEALTHY = {"effective_rank": 90.0, "encoder_spread": 0.7, "finite": True}
RANDOM = {"effective_rank": 30.0, "encoder_spread": 0.25, "finite": True}


def test_a_healthy_candidate_without_baseline_is_blessed():
    assert label_free_decision(HEALTHY, RANDOM, None, THRESHOLDS) == (True, [])


def test_a_collapsed_candidate_fails_with_the_collapse_reason():
    blessed, reasons = label_free_decision({**HEALTHY, "encoder_spread": 0.05}, RANDOM, None, THRESHOLDS)
    assert not blessed
    assert reasons == [
        "encoder_spread 0.0500 (the served embeddings' spread, 0 = all one direction) is below the floor 0.3: "
        "the encoder has collapsed (SimSiam paper, Sec. 4.1)"
    ]


def test_a_candidate_not_clearly_above_random_init_fails_with_the_rank_reason():
    blessed, reasons = label_free_decision({**HEALTHY, "effective_rank": 44.9}, RANDOM, None, THRESHOLDS)
    assert not blessed
    assert reasons == [
        "effective_rank 44.90 is below 1.5 x the random-init encoder's 30.00 (= 45.00): training did "
        "not clearly enrich the representation"
    ]
    assert label_free_decision({**HEALTHY, "effective_rank": 45.0}, RANDOM, None, THRESHOLDS)[0]  # the bound passes
    few = {**HEALTHY, "effective_rank": 8.0, "examples": 11, "dimension": 128}  # RankMe <= N = 11 here
    reasons = label_free_decision(few, {**RANDOM, "effective_rank": 6.0}, None, THRESHOLDS)[1]
    assert reasons[0].endswith(
        "note RankMe is at most min(N, D) and only N=11 eval images (D=128) were measured: "
        "add images, raise --eval-percent or lower --min-rank-ratio"
    )


def test_a_regression_against_the_last_blessed_model_fails_and_a_tie_passes():
    baseline = {**HEALTHY, "effective_rank": 90.5}
    blessed, reasons = label_free_decision(HEALTHY, RANDOM, baseline, THRESHOLDS)
    assert not blessed
    assert reasons == ["effective_rank 90.0000 is below the last blessed model's 90.5000: a regression"]
    assert label_free_decision(HEALTHY, RANDOM, HEALTHY, THRESHOLDS) == (True, [])
    within = {**HEALTHY, "effective_rank": 90.0 + BASELINE_TOLERANCE / 2}
    assert label_free_decision(HEALTHY, RANDOM, within, THRESHOLDS)[0]


def test_every_failed_condition_is_reported_and_nan_embeddings_are_not_blessed():
    bad = {"effective_rank": 10.0, "encoder_spread": 0.01, "finite": True}
    blessed, reasons = label_free_decision(bad, RANDOM, HEALTHY, THRESHOLDS)
    assert not blessed and len(reasons) == 3
    nan = {"effective_rank": None, "encoder_spread": None, "finite": False}
    assert label_free_decision(nan, RANDOM, None, THRESHOLDS) == (
        False,
        ["the candidate's embeddings hold NaN or inf: the encoder diverged"],
    )
    assert label_free_decision(HEALTHY, nan, None, THRESHOLDS) == (
        False,
        ["the random-init encoder's embeddings hold NaN or inf: there is no reference to beat"],
    )


# --- The component, run by its TFX executor on artifacts made by hand -------------------------------------

SIZE = 16
CONFIG = dict(
    image_size=SIZE, stored_size=SIZE, width=0.125, proj_dim=32, proj_hidden_dim=32, pred_hidden_dim=16, seed=3
)


def _transformed_examples(folder, n: int = 40) -> None:
    """What Transform writes: GZIP TFRecords of tf.Examples whose `image_u8` is a serialized uint8 [T, T, 3],
    with the image id and label (-1: unlabelled) the readers' samples use."""
    rng = np.random.default_rng(0)
    cells = rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8).repeat(SIZE // 4, 1).repeat(SIZE // 4, 2)
    ids = [f"card/{i}.jpg" for i in range(n)]
    write_transformed_file(folder / "Split-eval" / "data.gz", cells, image_ids=ids, labels=[-1] * n)  # unlabelled


def _artifact(kind, uri, artifact_id=0, split_names=None):
    artifact = kind()
    artifact.uri = str(uri)
    artifact.id = artifact_id
    if split_names is not None:
        artifact.split_names = split_names
    return artifact


def test_the_component_measures_rebuilds_random_init_and_writes_a_tfx_blessing(tmp_path, capsys):
    from tfx.types import artifact_utils, standard_artifacts

    from components import features as F
    from components.evaluate.label_free import LabelFreeEvaluator, random_init_encoder
    from components.train.encoder_io import save_encoder

    _transformed_examples(tmp_path / "examples")
    recipe = {
        "backbone": "resnet18",
        "image_size": SIZE,
        "stored_size": SIZE,
        "width": 0.125,
        "small_stem": None,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
    }
    # The candidate IS the random init (same seed, same recipe): its rank ratio must come out exactly 1.
    save_encoder(random_init_encoder(CONFIG, recipe), str(tmp_path / "model" / "Format-Serving"), recipe)
    examples = _artifact(
        standard_artifacts.Examples, tmp_path / "examples", 1, artifact_utils.encode_split_names(["eval"])
    )
    model = _artifact(standard_artifacts.Model, tmp_path / "model", 7)
    executor = LabelFreeEvaluator.EXECUTOR_SPEC.executor_class()

    def run(name, baseline, min_rank_ratio):
        evaluation = _artifact(standard_artifacts.ModelEvaluation, tmp_path / name / "evaluation")
        blessing = _artifact(standard_artifacts.ModelBlessing, tmp_path / name / "blessing")
        (tmp_path / name / "blessing").mkdir(parents=True)
        inputs = {"examples": [examples], "model": [model], **({"baseline_model": [baseline]} if baseline else {})}
        executor.Do(
            inputs,
            {"evaluation": [evaluation], "blessing": [blessing]},
            {
                "simsiam_config": json.dumps(CONFIG),
                "min_encoder_spread": 0.0,
                "min_rank_ratio": min_rank_ratio,
                "splits": "eval",
            },
        )
        report = json.loads((tmp_path / name / "evaluation" / F.LABEL_FREE_METRICS_FILE).read_text())
        return report, blessing, sorted(p.name for p in (tmp_path / name / "blessing").iterdir())

    report, blessing, files = run("strict", None, 1.2)
    assert report["candidate"]["examples"] == 40 and report["baseline"] is None
    assert report["rank_ratio"] == pytest.approx(1.0, abs=1e-6)  # random init rebuilt with the Trainer's seed
    assert not report["blessed"] and "random-init" in report["reasons"][0]
    assert files == ["NOT_BLESSED"]
    assert blessing.get_int_custom_property("blessed") == 0
    assert blessing.get_string_custom_property("current_model") == str(tmp_path / "model")
    assert blessing.get_int_custom_property("current_model_id") == 7
    assert "NOT BLESSED" in capsys.readouterr().out

    baseline = _artifact(standard_artifacts.Model, tmp_path / "model", 5)  # same weights: a tie passes
    report, blessing, files = run("lenient", baseline, 0.9)
    assert report["blessed"] and report["reasons"] == [] and files == ["BLESSED"]
    assert report["baseline"]["effective_rank"] == pytest.approx(report["candidate"]["effective_rank"])
    assert blessing.get_int_custom_property("blessed") == 1
    assert blessing.get_int_custom_property("baseline_model_id") == 5
    assert blessing.get_string_custom_property("baseline_model") == str(tmp_path / "model")
    assert report["thresholds"] == {
        "baseline_tolerance": BASELINE_TOLERANCE,
        "min_encoder_spread": 0.0,
        "min_rank_ratio": 0.9,
    }


def test_the_component_takes_its_thresholds_and_splits_from_the_pipeline() -> None:
    """No defaults of its own for what RunConfig sets (min_encoder_spread, min_rank_ratio) or the split."""
    from components.evaluate.label_free import LabelFreeEvaluator

    optional = {k for k, p in LabelFreeEvaluator.SPEC_CLASS.PARAMETERS.items() if p.optional}
    assert optional == {"max_examples"}
