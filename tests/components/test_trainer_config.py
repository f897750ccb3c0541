"""The SimSiam Trainer's settings cross TFX's custom_config boundary whole, or fail with the key's name."""

from __future__ import annotations

import json

import pytest

from components.train.trainer_config import SimSiamTrainerConfig
from models.config import SimSiamConfig


def _config(**changes) -> SimSiamTrainerConfig:
    values = dict(
        simsiam=SimSiamConfig(image_size=32, epochs=3, warmup_epochs=0),
        checkpoint_root="/ckpt",
        knn_every=2,
        collapse_threshold=0.5,
        precision="bf16",
        checkpoint_io_fraction=0.05,
        export_serving_model=True,
        sample_size=100,
        shuffle_buffer=64,
        cache_images=False,
    )
    return SimSiamTrainerConfig(**{**values, **changes})


def test_round_trip_through_json_gives_the_same_config():
    config = _config(devices=("/gpu:0", "/gpu:1"))
    custom = json.loads(json.dumps(config.to_custom_config()))  # what TFX stores and hands to run_fn
    assert SimSiamTrainerConfig.from_custom_config(custom) == config
    assert custom["simsiam"]["image_size"] == 32 and custom["devices"] == ["/gpu:0", "/gpu:1"]


def test_missing_and_unknown_keys_are_named():
    custom = _config().to_custom_config()
    del custom["knn_every"]
    custom["knn_evry"] = 5
    with pytest.raises(ValueError, match=r"unknown keys \['knn_evry'\], missing keys \['knn_every'\]"):
        SimSiamTrainerConfig.from_custom_config(custom)
    with pytest.raises(ValueError, match="unknown SimSiamConfig fields"):
        SimSiamTrainerConfig.from_custom_config({**_config().to_custom_config(), "simsiam": {"epoch": 3}})


def test_tfx_vertex_keys_are_set_aside():
    custom = {**_config().to_custom_config(), "ai_platform_enable_vertex": True, "ai_platform_training_args": {}}
    assert SimSiamTrainerConfig.from_custom_config(custom) == _config()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"precision": "mixed_bfloat16"}, "precision must be one of"),
        ({"knn_every": 0}, "knn_every must be >= 1"),
        ({"checkpoint_io_fraction": 0.0}, "checkpoint_io_fraction"),
        ({"checkpoint_root": ""}, "checkpoint_root"),
    ],
)
def test_bad_values_are_rejected_with_the_reason(changes, message):
    with pytest.raises(ValueError, match=message):
        _config(**changes)
