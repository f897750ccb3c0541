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


def test_the_evaluation_view_follows_the_training_size_unless_given():
    smoke = profile_config("smoke").simsiam  # evaluated on the whole stored photo (FixRes): tests take that path
    assert (smoke.image_size, smoke.stored_size, smoke.eval_size) == (32, 40, 40)
    fixres = profile_config("cpu", eval_size=96).simsiam
    assert (fixres.image_size, fixres.stored_size, fixres.eval_size) == (64, 96, 96)
    same = profile_config("cpu", image_size=64, eval_size=96).simsiam  # the profile's own size restated
    assert (same.stored_size, same.eval_size) == (96, 96)
    smaller = profile_config("smoke", image_size=48).simsiam  # a new training size: both follow it
    assert (smaller.stored_size, smaller.eval_size) == (56, 48)
    assert profile_config("gpu").simsiam.eval_size == 128  # not measured on a GPU: the training size
    with pytest.raises(ValueError, match=r"eval_size \(104\) must lie in 8..stored_size \(96\)"):
        profile_config("cpu", eval_size=104)  # nothing to show beyond the stored photo


def test_the_labelled_gate_is_relative_except_in_the_smoke_profile():
    for name in ("cpu", "gpu"):  # no absolute floor: 0.5 is chance for 2 classes and out of reach for 30
        config = profile_config(name)
        assert (config.accuracy_floor, config.gate_against, config.gate_margin) == (0.0, "strongest", 0.0)
    assert profile_config("smoke").gate_against == "none"  # 2 epochs prove the plumbing, not the quality
    assert profile_config("smoke", gate_against="random_init").gate_against == "random_init"
    with pytest.raises(ValueError, match="gate_against must be one of"):
        profile_config("cpu", gate_against="best")
    with pytest.raises(ValueError, match="gate_margin >= 0"):
        profile_config("cpu", gate_margin=-0.01)


def test_wall_time_counts_from_the_process_start_imports_included():
    """The summary's `wall_s` is `seconds_since_process_start()`: a process that spends 1.5 s before it
    asks (as `run` spends its start-up on imports) reports them."""
    import subprocess
    import sys
    from pathlib import Path

    REPO = Path(__file__).resolve().parents[2]
    code = "import time; time.sleep(1.5)\nfrom pipeline.memory import seconds_since_process_start as s; print(s())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True, cwd=str(REPO)
    )
    assert 1.5 <= float(out.stdout) < 30
