"""Resolver strategy: the latest blessed model that is not the candidate under evaluation.

TFX's LatestBlessedModelStrategy hands a re-run its own (cached) candidate as the baseline, so a
re-run of an unchanged pipeline evaluates the model against itself and pushes again. This subclass
leaves the candidate out and lets TFX's strategy pick among the rest: cached re-runs stay cached,
and a newly trained model is still compared with the previous blessed one. (Kubeflow V2 compiles
only TFX's own strategy, so kubeflow/runner.py uses LatestBlessedModelStrategy there.)
"""

from __future__ import annotations

from tfx import types
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy

CANDIDATE_KEY = "candidate"
MODEL_KEY = "model"
BLESSING_KEY = "model_blessing"


class PreviousBlessedModelStrategy(LatestBlessedModelStrategy):
    """Inputs: `model` (all models), `model_blessing` (all blessings), `candidate` (this run's model).

    Returns `model` / `model_blessing`: the latest blessed model other than the candidate (or none),
    and `candidate` unchanged.
    """

    def resolve_artifacts(self, store, input_dict: dict[str, list[types.Artifact]]):
        candidates = list(input_dict.get(CANDIDATE_KEY, []))
        excluded = {a.id for a in candidates}
        others = {
            MODEL_KEY: [m for m in input_dict.get(MODEL_KEY, []) if m.id not in excluded],
            BLESSING_KEY: list(input_dict.get(BLESSING_KEY, [])),
        }
        result = super().resolve_artifacts(store, others)
        return {**result, CANDIDATE_KEY: candidates}
