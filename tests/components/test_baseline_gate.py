"""The BaselineGate's decision (components/evaluate/baseline_gate.py) against hand-worked cases; the
component itself runs in every labelled pipeline test (tests/e2e/test_pipeline_e2e.py)."""

from __future__ import annotations

import pytest

from components.evaluate.baseline_gate import baseline_decision

# The 150-epoch cpu run's untrained baselines on the Flowers eval split, rounded.
BASELINES = {
    "random_init": {"linear_probe": 0.44, "knn": 0.41},
    "random_filters": {"linear_probe": 0.65, "knn": 0.61},
    "colour_histograms": {"linear_probe": 0.52, "knn": 0.52},
}


def test_a_model_above_the_strongest_baseline_on_both_measures_is_blessed() -> None:
    decision = baseline_decision({"linear_probe": 0.70, "knn": 0.70}, BASELINES, "strongest")
    assert decision["blessed"] is True and decision["reasons"] == []
    assert [(c["measure"], c["baseline"], c["needed"], c["passed"]) for c in decision["comparisons"]] == [
        ("linear_probe", "random_filters", 0.65, True),
        ("knn", "random_filters", 0.61, True),
    ]


def test_below_the_random_filters_on_one_measure_is_refused_with_the_numbers() -> None:
    decision = baseline_decision({"linear_probe": 0.60, "knn": 0.70}, BASELINES, "strongest")
    assert decision["blessed"] is False
    assert decision["reasons"] == [
        "linear-probe accuracy 0.600 is below the untrained random filters (0.650): "
        "a feature that needs no training does as well"
    ]


def test_against_random_init_only_the_encoder_at_initialisation_counts() -> None:
    decision = baseline_decision({"linear_probe": 0.60, "knn": 0.50}, BASELINES, "random_init")
    assert decision["blessed"] is True
    assert {c["baseline"] for c in decision["comparisons"]} == {"random_init"}


def test_the_margin_is_added_to_the_baseline() -> None:
    decision = baseline_decision({"linear_probe": 0.70, "knn": 0.70}, BASELINES, "strongest", margin=0.1)
    assert decision["blessed"] is False
    assert [round(c["needed"], 6) for c in decision["comparisons"]] == [0.75, 0.71]
    assert "(0.650 + margin 0.1)" in decision["reasons"][0]


def test_none_compares_nothing_and_missing_scores_fail_closed() -> None:
    assert baseline_decision({"linear_probe": None, "knn": None}, {}, "none")["blessed"] is True
    decision = baseline_decision({"linear_probe": 0.9, "knn": None}, {}, "strongest")
    assert decision["blessed"] is False and len(decision["reasons"]) == 2
    assert decision["reasons"] == [
        "linear-probe accuracy: no untrained baseline was scored, so nothing can be compared",
        "kNN accuracy: the candidate has no score, so nothing can be compared",
    ]


@pytest.mark.parametrize(
    ("against", "margin", "message"),
    [("best", 0.0, "against must be one of"), ("strongest", -0.1, "margin must be >= 0")],
)
def test_bad_settings_are_rejected(against, margin, message) -> None:
    with pytest.raises(ValueError, match=message):
        baseline_decision({}, BASELINES, against, margin)


def test_the_console_line_says_when_no_baseline_was_checked() -> None:
    """A bare "BLESSED" reads as "beat the baselines"; with `none` (the smoke profile) nothing was compared."""
    from components.evaluate.baseline_gate import verdict_line

    unchecked = verdict_line(baseline_decision({"linear_probe": 0.2, "knn": 0.2}, BASELINES, "none"))
    assert unchecked.startswith("[BaselineGate] BLESSED (no baselines checked: ")
    assert "smoke profile" in unchecked and "only checks that the run works" in unchecked
    checked = verdict_line(baseline_decision({"linear_probe": 0.70, "knn": 0.70}, BASELINES, "strongest"))
    assert checked == "[BaselineGate] BLESSED"
    refused = verdict_line(baseline_decision({"linear_probe": 0.60, "knn": 0.70}, BASELINES, "strongest"))
    assert refused.startswith("[BaselineGate] NOT BLESSED\n  - linear-probe accuracy 0.600 is below")


def _summary(against: str) -> dict:
    """The fields of summary.json (pipeline/summary.py) that the run's console summary reads."""
    decision = baseline_decision({"linear_probe": 0.7, "knn": 0.7}, BASELINES, against)
    return {
        "seconds_per_component": {"BaselineGate": 1.0},
        "states": {"BaselineGate": "COMPLETE"},
        "eval_metrics": {"accuracy": 0.7},
        "baseline_gate": decision,
        "blessed": True,
        "pushed": True,
        "serving_model_dir": "runs/x/serving/1",
        "wall_s": 60.0,
        "peak_rss_mb": 900.0,
    }


def test_the_run_summary_says_when_the_pushed_model_was_not_compared(capsys) -> None:
    from pipeline.commands.run import _print_summary

    _print_summary(_summary("none"), "runs/x")
    assert "no baselines checked" in capsys.readouterr().out
    _print_summary(_summary("strongest"), "runs/x")
    assert "no baselines checked" not in capsys.readouterr().out


def test_the_component_has_no_defaults_of_its_own() -> None:
    """`against` and `margin` come from the pipeline (RunConfig's gate_against, gate_margin): one place."""
    from components.evaluate.baseline_gate import BaselineGate

    assert [k for k, p in BaselineGate.SPEC_CLASS.PARAMETERS.items() if p.optional] == []
