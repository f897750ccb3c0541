"""The run profiles with command-line overrides."""

from __future__ import annotations

import pytest

from pipeline.configs import profile_config


def test_fewer_epochs_than_the_profiles_warmup_shorten_the_warmup():
    assert profile_config("cpu").simsiam.warmup_epochs == 5
    assert profile_config("cpu", epochs=4).simsiam.warmup_epochs == 0  # was: an error
    assert profile_config("cpu", epochs=40).simsiam.warmup_epochs == 5  # fits: the profile's own
    assert profile_config("gpu", epochs=8).simsiam.warmup_epochs == 0
    with pytest.raises(ValueError, match="warmup_epochs must lie in"):  # an explicit warm-up is never changed
        profile_config("cpu").replace(epochs=4, warmup_epochs=5)
