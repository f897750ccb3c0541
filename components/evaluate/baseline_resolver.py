"""Resolver strategy: the latest blessed model that is not the candidate under evaluation.

TFX's LatestBlessedModelStrategy hands a re-run its own (cached) candidate as the
baseline, so a re-run of an unchanged pipeline evaluates the model against itself
and pushes again. Leaving the candidate out keeps cached re-runs cached, and a
newly trained model is still compared with the previous blessed one.
"""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.common.resolver import ResolverStrategy

CANDIDATE_KEY = "candidate"
MODEL_KEY = "model"
BLESSING_KEY = "model_blessing"


class PreviousBlessedModelStrategy(ResolverStrategy):
    """Inputs: `model` (all models), `model_blessing` (all blessings), `candidate` (this run's model)."""

    def resolve_artifacts(self, store, input_dict: dict[str, list[types.Artifact]]):
        candidates = {a.id for a in input_dict.get(CANDIDATE_KEY, [])}
        blessed = {
            b.get_int_custom_property("current_model_id"): b
            for b in input_dict.get(BLESSING_KEY, [])
            if b.get_int_custom_property("blessed") == 1
        }
        result = {MODEL_KEY: [], BLESSING_KEY: [], CANDIDATE_KEY: list(input_dict.get(CANDIDATE_KEY, []))}
        for model in sorted(input_dict.get(MODEL_KEY, []), key=lambda a: a.id, reverse=True):
            if model.id in blessed and model.id not in candidates:
                result[MODEL_KEY], result[BLESSING_KEY] = [model], [blessed[model.id]]
                break
        return result
