"""The ModelBlessing every gate of this project writes, exactly as TFX's Evaluator writes it
(tfx/components/evaluator/executor.py): a `BLESSED` or `NOT_BLESSED` file and the custom properties
`blessed`, `current_model`, `current_model_id`, `baseline_model`, `baseline_model_id`, so that the
Pusher and TFX's LatestBlessedModelStrategy read our gates' blessings as they read the Evaluator's."""

from __future__ import annotations

from tfx.types import Artifact


def write_blessing(blessing: Artifact, model: Artifact, blessed: bool, baseline_model: Artifact | None = None) -> None:
    """Marks `blessing` (a ModelBlessing output) as blessing `model` or not; `baseline_model`: the model
    it was compared with, if any."""
    from tfx.components.evaluator import constants
    from tfx.utils import io_utils

    blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri)
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
    if baseline_model is not None:
        blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline_model.uri)
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY, baseline_model.id)
    name = constants.BLESSED_FILE_NAME if blessed else constants.NOT_BLESSED_FILE_NAME
    io_utils.write_string_file(f"{blessing.uri.rstrip('/')}/{name}", "")
    blessing.set_int_custom_property(
        constants.ARTIFACT_PROPERTY_BLESSED_KEY, constants.BLESSED_VALUE if blessed else constants.NOT_BLESSED_VALUE
    )
