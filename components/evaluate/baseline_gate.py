"""BaselineGate: a labelled run's model is pushed only when it beats the features that need no training.

An absolute accuracy floor means different things for 2 classes and for 30, and a model can clear it
while a cheap untrained feature does better (on Flowers, 64 random 3x3 filters plus the mean colour
beat short SimSiam runs that a floor of 0.5 blessed: docs/quality.md, "The baselines"). The
natural floor is what the user could have without SimSiam. This step takes the TFX
Evaluator's decision (its TFMA thresholds: the optional absolute floor and no regression against the
last pushed model) and adds, per measure, a comparison with the untrained baselines that the SimSiam
Trainer scored on the same eval split (`baselines` in its `monitor_history.json`; models/baselines.py):

- linear probe: the accuracy the Evaluator measured for the served classifier (TFMA, eval split);
- kNN: the SimSiam Trainer's final kNN accuracy of the embeddings (`final.knn_accuracy`).

`against`: "strongest" (each measure against the best of random init, random filters and colour
histograms), "random_init" (only the SimSiam encoder at its random initialisation), or "none" (the
Evaluator's decision alone: the smoke profile, which only proves the plumbing). The candidate must
reach `baseline + margin` on both measures. The decision, each comparison and every reason in plain
words go to `baseline_gate.json` in the blessing's folder; the blessing itself is written as TFX's
Evaluator writes one (components/evaluate/blessing.py), so the Pusher reads it unchanged.

No `from __future__ import annotations` here: TFX reads the component's type hints as objects.
"""

import json
import os
from typing import Any

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types import standard_artifacts

from components import features as F
from components.evaluate.blessing import write_blessing
from components.json_files import read_json
from models.baselines import GATE_AGAINST, strongest_baseline

GATE_FILE = "baseline_gate.json"
MEASURES = {"linear_probe": "linear-probe accuracy", "knn": "kNN accuracy"}
# Said wherever the decision is shown when `against` is "none": a bare "BLESSED" would read as "beat
# the baselines" when nothing was compared.
NOT_COMPARED = (
    "no baselines checked: --gate-against none, as in the smoke profile, which only checks that the run works; "
    "the Evaluator's decision alone"
)


def baseline_decision(
    trained: dict[str, Any], baselines: dict[str, dict[str, Any]], against: str, margin: float = 0.0
) -> dict[str, Any]:
    """Compares the candidate's `trained` scores `{"linear_probe": float, "knn": float}` (accuracies in
    [0, 1]; None when not measured) with `baselines` `{name: {"linear_probe": ..., "knn": ...}}`.

    Returns `{"blessed": bool, "against", "margin", "comparisons": [{"measure", "trained", "baseline",
    "baseline_score", "needed", "passed"}], "reasons": [str]}`, plus "note" (`NOT_COMPARED`) when
    `against` is "none". A measure with no candidate or no
    baseline score fails closed (a gate that cannot compare must not bless). Raises ValueError for an
    unknown `against` or a negative `margin`.
    """
    if against not in GATE_AGAINST:
        raise ValueError(f"against must be one of {GATE_AGAINST}, got {against!r}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    decision: dict[str, Any] = {"blessed": True, "against": against, "margin": margin, "comparisons": [], "reasons": []}
    if against == "none":
        return {**decision, "note": NOT_COMPARED}
    pool = baselines if against == "strongest" else {"random_init": baselines.get("random_init") or {}}
    for measure, title in MEASURES.items():
        best, score = strongest_baseline(pool, measure), trained.get(measure)
        if best is None or score is None:
            missing = "the candidate has no score" if score is None else "no untrained baseline was scored"
            decision["reasons"].append(f"{title}: {missing}, so nothing can be compared")
            decision["blessed"] = False
            continue
        name, value = best
        passed = score >= value + margin
        decision["comparisons"].append(
            {
                "measure": measure,
                "trained": score,
                "baseline": name,
                "baseline_score": value,
                "needed": value + margin,
                "passed": passed,
            }
        )
        if not passed:
            plus = f" + margin {margin:g}" if margin else ""
            decision["reasons"].append(
                f"{title} {score:.3f} is below the untrained {name.replace('_', ' ')} ({value:.3f}{plus}): "
                f"a feature that needs no training does as well"
            )
            decision["blessed"] = False
    return decision


def verdict_line(decision: dict[str, Any]) -> str:
    """The console's verdict on `decision` (`baseline_decision`), its note in brackets, a line per reason."""
    verdict = "BLESSED" if decision["blessed"] else "NOT BLESSED"
    note = f" ({decision['note']})" if decision.get("note") else ""
    return f"[BaselineGate] {verdict}{note}" + "".join(f"\n  - {r}" for r in decision["reasons"])


def read_decision(blessing_uri: str | None) -> dict[str, Any]:
    """The `baseline_gate.json` a BaselineGate wrote in `blessing_uri`, or {} when there is none."""
    return read_json(os.path.join(blessing_uri, GATE_FILE) if blessing_uri else None)


@component
def BaselineGate(  # noqa: N802 - TFX component names are class-like
    evaluation: InputArtifact[standard_artifacts.ModelEvaluation],
    evaluator_blessing: InputArtifact[standard_artifacts.ModelBlessing],
    model: InputArtifact[standard_artifacts.Model],
    simsiam_run: InputArtifact[standard_artifacts.ModelRun],
    blessing: OutputArtifact[standard_artifacts.ModelBlessing],
    against: Parameter[str],
    margin: Parameter[float],
) -> None:
    """Blesses `model` when the Evaluator blessed it and it beats the untrained baselines (see the
    module docstring); writes `baseline_gate.json` beside the blessing. `against` and `margin`: the
    pipeline passes its RunConfig's `gate_against` and `gate_margin`."""
    from tfx.components.evaluator import constants

    from components.evaluate.tfma_results import evaluation_metrics, gate_result

    with fileio.open(os.path.join(simsiam_run.uri, F.MONITOR_HISTORY_FILE), "r") as f:
        monitor = json.load(f)
    trained = {
        "linear_probe": evaluation_metrics(evaluation.uri).get("accuracy"),
        "knn": (monitor.get("final") or {}).get("knn_accuracy"),
    }
    decision = baseline_decision(trained, monitor.get("baselines") or {}, against, float(margin))
    evaluator_blessed = (
        evaluator_blessing.get_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY) == constants.BLESSED_VALUE
    )
    evaluator_reasons = (
        []
        if evaluator_blessed
        else (gate_result(evaluation.uri)["failures"] or ["the Evaluator did not bless the model"])
    )
    decision["evaluator_blessed"] = evaluator_blessed
    decision["reasons"] = [f"Evaluator: {r}" for r in evaluator_reasons] + decision["reasons"]
    decision["blessed"] = evaluator_blessed and decision["blessed"]
    fileio.makedirs(blessing.uri)
    with fileio.open(os.path.join(blessing.uri, GATE_FILE), "w") as f:
        json.dump(decision, f, indent=1)
    write_blessing(blessing, model, decision["blessed"])
    # Kubeflow V2: the container entry point renames the Evaluator's `current_model_id` (an int) to the
    # model's artifact name, the name the compiled LatestBlessedModelStrategy query looks the model up by,
    # but only on the Evaluator's own blessing (kubeflow_v2_run_executor.py, `refactor_model_blessing`).
    # Carry that name over, or no later run finds this blessing's model as its baseline. (Locally the
    # Evaluator's value is the int `model.id` that write_blessing already set.)
    current_model = evaluator_blessing.get_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY)
    if isinstance(current_model, str):
        blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, current_model)
    for c in decision["comparisons"]:
        print(
            f"[BaselineGate] {MEASURES[c['measure']]} {c['trained']:.4f} vs untrained {c['baseline']} "
            f"{c['baseline_score']:.4f}: {'ok' if c['passed'] else 'BELOW'}",
            flush=True,
        )
    print(verdict_line(decision), flush=True)
