"""Views larger than the training crops (`SimSiamConfig.eval_size`, FixRes): an encoder rebuilt for
them, from its saved files or in memory, keeps its trained stem and weights; a saved recipe's
evaluation size is the one loaded by default; `benchmarks.eval_resolution` scores the encoder and the
cheap baselines at each size."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from benchmarks import eval_resolution
from components.train.encoder_io import load_encoder, save_encoder
from models.backbones import build_backbone
from models.encoder import build_encoder, encoder_at_size
from tests.benchmarks.test_quality_benchmark import _pattern_folder

RECIPE = {"backbone": "resnet18", "image_size": 32, "width": 0.125, "mean": [0.5] * 3, "std": [0.25] * 3}


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[str, keras.Model]:
    """A random encoder trained at 32 px: below 64 px, so it has the small stem (no stride, no pool)."""
    keras.utils.set_random_seed(3)
    encoder = build_encoder(build_backbone("resnet18", 32, width=0.125), 32, RECIPE["mean"], RECIPE["std"])
    folder = str(tmp_path_factory.mktemp("model"))
    save_encoder(encoder, folder, RECIPE)
    return folder, encoder


def test_a_larger_view_keeps_the_trained_stem_and_weights(saved) -> None:
    folder, trained = saved
    larger, recipe = load_encoder(folder, image_size=64)  # 64 px alone would pick the strided stem
    assert recipe["image_size"] == 32 and tuple(larger.input.shape) == (None, 64, 64, 3)
    assert "stem_pool" not in [layer.name for layer in larger.get_layer("resnet18").layers]
    for a, b in zip(trained.get_weights(), larger.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    images = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    same, _ = load_encoder(folder)
    np.testing.assert_allclose(same.predict(images, verbose=0), trained.predict(images, verbose=0), atol=1e-6)


def test_the_in_memory_copy_for_another_size_computes_what_the_saved_one_does(saved, tmp_path) -> None:
    folder, trained = saved
    assert encoder_at_size(trained, 32) is trained  # already that size: no copy
    larger = encoder_at_size(trained, 64)
    assert tuple(larger.input.shape) == (None, 64, 64, 3) and tuple(trained.input.shape) == (None, 32, 32, 3)
    assert "stem_pool" not in [layer.name for layer in larger.get_layer("resnet18").layers]
    images = np.random.default_rng(1).uniform(0, 1, (2, 64, 64, 3)).astype("float32")
    from_files, _ = load_encoder(folder, image_size=64)
    np.testing.assert_allclose(larger.predict(images, verbose=0), from_files.predict(images, verbose=0), atol=1e-6)

    def stem(encoder):
        return encoder.get_layer("resnet18").get_layer("stem_conv").kernel

    stem(larger).assign_add(np.ones(stem(larger).shape, "float32"))  # a copy: the original keeps its own
    np.testing.assert_array_equal(stem(trained).numpy(), stem(from_files).numpy())
    with pytest.raises(ValueError, match="at least 8"):
        encoder_at_size(trained, 4)
    # A recipe with an evaluation size loads at that size: the probe, the index and serving embed there.
    save_encoder(trained, str(tmp_path), {**RECIPE, "eval_size": 48})
    assert tuple(load_encoder(str(tmp_path))[0].input.shape) == (None, 48, 48, 3)


def test_the_command_scores_the_encoder_and_the_baselines_at_each_size(saved, tmp_path) -> None:
    folder, _ = saved
    out = tmp_path / "result.json"
    data = _pattern_folder(tmp_path / "data", size=48)
    argv = ["--model", folder, "--data-dir", str(data), "--sizes", "32", "48", "--stored-size", "48", "--out", str(out),
            "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    assert eval_resolution.main(argv) == 0
    record = json.loads(out.read_text())
    assert record["model"]["image_size"] == 32 and record["counts"]["train"] + record["counts"]["eval"] == 48
    assert sorted(record["sizes"]) == ["32", "48"]
    for scores in record["sizes"].values():
        assert sorted(scores) == ["colour_histograms", "random_filters", "simsiam"]
        assert all(0.0 <= s["linear_probe"] <= 1.0 and 0.0 <= s["knn"] <= 1.0 for s in scores.values())


def test_sizes_above_the_stored_photos_are_refused(saved, capsys) -> None:
    with pytest.raises(SystemExit):
        eval_resolution.parse_args(["--model", saved[0], "--sizes", "64", "128", "--stored-size", "96"])
    assert "--sizes must lie in 8..--stored-size (96)" in capsys.readouterr().err
