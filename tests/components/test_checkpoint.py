"""Checkpoints that cost little, resume exactly, and continue the random streams."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from components.examples import tf_example_reader
from components.train.checkpoint import IntervalCheckpoint
from components.train.data import image_dataset
from models.augment import SimSiamAugmentation
from tests.fakes.transformed import write_transformed_file


def _model() -> keras.Model:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    return model


def _data(n: int = 32):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)).astype("float32"), rng.normal(size=(n, 1)).astype("float32")


def test_gpu_profile_cadence_keeps_checkpoint_io_under_five_percent() -> None:
    # The gpu profile: 400 epochs of 20 steps; at ~10k views/s an epoch takes ~0.5 s, and saving the
    # ResNet-18 training state (~180 MB) ~1.5 s. Saving every epoch would cost 3x the training time.
    checkpoint = IntervalCheckpoint("/unused", io_fraction=0.05)
    checkpoint.save_seconds = checkpoint.io_seconds = 1.5  # the save when training starts
    saved_after = []
    for epoch in range(400):
        checkpoint.train_seconds += 0.5
        if checkpoint.due():
            checkpoint.io_seconds += 1.5
            saved_after.append(epoch + 1)
    checkpoint.io_seconds += 1.5  # always after the last epoch
    assert checkpoint.io_seconds / checkpoint.train_seconds <= 0.05
    # ... and still often enough: the first save paid back by 90 s of training (3 saves' worth of
    # budget: itself, the next and the final one), then one every 30 s (1.5 s / 5%).
    gaps = np.diff([0, *saved_after, 400])
    assert saved_after[0] == 180 and set(gaps[1:-1]) == {60}


def test_every_epoch_with_fraction_one_and_only_first_and_last_with_a_tiny_one(tmp_path) -> None:
    x, y = _data()
    every = IntervalCheckpoint(str(tmp_path / "every"), io_fraction=1.0)
    _model().fit(x, y, epochs=4, batch_size=8, callbacks=[every], verbose=0)
    rare = IntervalCheckpoint(str(tmp_path / "rare"), io_fraction=1e-6)
    _model().fit(x, y, epochs=4, batch_size=8, callbacks=[rare], verbose=0)
    assert rare.saves == 2 and rare.saved_epoch == 4  # when training starts, and after the last epoch
    assert every.saves >= 4 and every.saved_epoch == 4
    assert sorted(p.name for p in (tmp_path / "every").iterdir()) == ["checkpoint.json", "epoch-00004.weights.h5"]


def test_restore_gives_the_weights_the_optimizer_state_and_the_epoch(tmp_path) -> None:
    x, y = _data()
    trained = _model()
    trained.fit(x, y, epochs=3, batch_size=8, callbacks=[IntervalCheckpoint(str(tmp_path), 1.0)], verbose=0)
    fresh = _model()
    resume = IntervalCheckpoint(str(tmp_path), 1.0)
    assert resume.restore(fresh) == 3
    assert int(fresh.optimizer.iterations.numpy()) == 12  # the schedule continues, not restarts
    for a, b in zip(trained.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(trained.optimizer.variables, fresh.optimizer.variables):  # momentum included
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert IntervalCheckpoint(str(tmp_path / "none")).restore(_model()) == 0


def test_io_fraction_must_be_a_share() -> None:
    with pytest.raises(ValueError, match=r"io_fraction must lie in \(0, 1\]"):
        IntervalCheckpoint("/x", io_fraction=0)


def _write_images(folder, n: int = 12) -> str:
    """A Transform output split of `n` stored 2x2 images, image i filled with the value i: GZIP TFRecords
    in two files, as Transform writes them."""
    images = np.arange(n, dtype=np.uint8)[:, None, None, None].repeat(2, 1).repeat(2, 2).repeat(3, 3)
    for part in range(2):
        write_transformed_file(folder / f"part-{part}.gz", images[part::2])
    return str(folder / "*")


def _epochs(pattern: str, initial_epoch: int, epochs: int, shuffle_seed: int = 7, **kwargs) -> list[list[int]]:
    """The image numbers each epoch of the SimSiam Trainer's streamed dataset reads (3 batches of 4)."""
    keras.utils.set_random_seed(0)  # as the Trainer does (a global seed of 0 is a special case in TF)
    batches = image_dataset(
        tf_example_reader(), pattern, image_size=2, batch_size=4, steps_per_epoch=3, epochs=epochs,
        shuffle_seed=shuffle_seed, initial_epoch=initial_epoch, **kwargs,
    )  # fmt: skip
    flat = [b[:, 0, 0, 0].tolist() for b in batches.as_numpy_iterator()]
    assert len(flat) == 3 * (epochs - initial_epoch)  # the dataset ends with the last epoch
    return [sum(flat[i : i + 3], []) for i in range(0, len(flat), 3)]


@pytest.mark.parametrize("kwargs", [{"shuffle_buffer": 12}, {"shuffle_buffer": 4}, {"cache": True}])
def test_a_resumed_run_reads_the_data_order_of_its_epoch_not_epoch_zeros(tmp_path, kwargs) -> None:
    pattern = _write_images(tmp_path / "Split-train")
    uninterrupted = _epochs(pattern, 0, 5, **kwargs)
    resumed = _epochs(pattern, 3, 5, **kwargs)
    assert resumed == uninterrupted[3:]
    assert resumed[0] != uninterrupted[0]
    assert all(sorted(order) == list(range(12)) for order in uninterrupted)  # each epoch: every image once
    assert len({tuple(order) for order in uninterrupted}) == 5
    assert _epochs(pattern, 0, 2, shuffle_seed=0, **kwargs) != _epochs(pattern, 0, 2, shuffle_seed=1, **kwargs)


def test_a_resumed_run_draws_the_views_of_its_epoch_not_epoch_zeros() -> None:
    images = np.random.default_rng(1).uniform(size=(4, 20, 20, 3)).astype("float32")
    through = SimSiamAugmentation(16, seed=3)
    views = []
    for epoch in range(3):  # an uninterrupted run: two views per step, two steps per epoch
        through.restart_stream(epoch)
        views.append([keras.ops.convert_to_numpy(through(images)) for _ in range(4)])
    resumed = SimSiamAugmentation(16, seed=3)  # a fresh process that restored epoch 2
    resumed.restart_stream(2)
    again = [keras.ops.convert_to_numpy(resumed(images)) for _ in range(4)]
    for a, b in zip(again, views[2]):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(again[0], views[0][0])
    assert not np.allclose(views[1][0], views[0][0])


def test_a_finished_runs_checkpoints_are_removed_and_the_flag_keeps_them(tmp_path):
    from components.train.checkpoint import remove_run_checkpoints
    from components.train.history import HISTORY_FILE
    from components.train.trainer_config import SimSiamTrainerConfig
    from pipeline.configs import profile_config

    run = tmp_path / "checkpoints" / "SimSiamTrainer" / "abc123"
    (run / "state").mkdir(parents=True)
    (run / "state" / "ckpt-1.data-00000-of-00001").write_bytes(b"x" * 100)
    (run / HISTORY_FILE).write_text('{"epochs": []}')
    assert remove_run_checkpoints(str(run)) is True
    assert not run.exists() and (tmp_path / "checkpoints" / "SimSiamTrainer").is_dir()
    assert remove_run_checkpoints(str(run)) is False  # nothing left: a no-op
    # The flag travels from the command line through the RunConfig to the Trainer's strict config.
    assert profile_config("smoke").keep_checkpoints is False
    assert profile_config("smoke", keep_checkpoints=True).keep_checkpoints is True
    from tests.components.test_trainer_config import _config

    custom = _config(keep_checkpoints=True).to_custom_config()
    assert SimSiamTrainerConfig.from_custom_config(custom).keep_checkpoints is True
