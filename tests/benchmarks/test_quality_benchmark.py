"""The quality benchmark: image loading/caching, plots, the CLI, and one end-to-end run on JAX."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks import image_data, quality
from components.ingest.splits import split_of
from components.report import figures as plots

REPO = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write_solid(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (24, 16), fmt: str = "JPEG"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, fmt)


def _solid_folder(root: Path, per_class: int = 20) -> Path:
    """Two classes: 'black' (0, 0, 0) and 'white' (255, 255, 255) PNGs (lossless), plus clutter."""
    for i in range(per_class):
        _write_solid(root / "white" / f"w{i:03d}.png", (255, 255, 255), fmt="PNG")
        _write_solid(root / "black" / f"b{i:03d}.png", (0, 0, 0), fmt="PNG")
    (root / "LICENSE.txt").write_text("not a class folder")
    (root / "white" / "notes.txt").write_text("not an image")
    return root


# --- image_data --------------------------------------------------------------------------------


def test_list_images_follows_the_example_gen_listing(tmp_path: Path) -> None:
    _write_solid(tmp_path / "tulips" / "a.jpg", (1, 2, 3))
    _write_solid(tmp_path / "daisy" / "sub" / "b.JPG", (1, 2, 3))
    _write_solid(tmp_path / "daisy" / "a.png", (1, 2, 3), fmt="PNG")
    (tmp_path / "daisy" / "x.txt").write_text("no")
    (tmp_path / "README").write_text("ignored: not in a class folder")
    ids, labels, classes, rejected = image_data.list_images(tmp_path)
    assert classes == ["daisy", "tulips"]
    assert ids == ["daisy/a.png", "daisy/sub/b.JPG", "tulips/a.jpg"]
    assert labels == [0, 0, 1]
    assert [r[0] for r in rejected] == ["daisy/x.txt"]


def test_list_images_errors_on_missing_or_empty_dir(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        image_data.list_images(tmp_path / "absent")
    with pytest.raises(ValueError, match="no class folders"):
        image_data.list_images(tmp_path)


def test_select_subset_is_round_robin_over_classes() -> None:
    labels = [0, 0, 0, 1, 1, 2]
    # depth 0 takes 0, 3, 5; depth 1 takes 1, 4; the cap of 4 keeps 0, 3, 5, 1.
    assert image_data.select_subset(labels, 4) == [0, 1, 3, 5]
    assert image_data.select_subset(labels, 100) == [0, 1, 2, 3, 4, 5]


def test_decode_resize_keeps_the_whole_photo_as_the_transform_does(tmp_path: Path) -> None:
    # 40x20: left quarter red, middle half green, right quarter blue, squashed to 8x8: every part
    # survives (a centre crop would keep only the green half), in the Transform graph's pixels too.
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :10] = (255, 0, 0)
    img[:, 10:30] = (0, 255, 0)
    img[:, 30:] = (0, 0, 255)
    Image.fromarray(img).save(tmp_path / "x.png")
    out = image_data.decode_resize(tmp_path / "x.png", 8)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, 0], np.tile([255, 0, 0], (8, 1)))
    np.testing.assert_array_equal(out[:, 3:5], np.full((8, 2, 3), [0, 255, 0]))
    np.testing.assert_array_equal(out[:, -1], np.tile([0, 0, 255], (8, 1)))
    tf = pytest.importorskip("tensorflow")
    from components.transform import decode_and_resize

    graph = decode_and_resize(tf.constant((tmp_path / "x.png").read_bytes()), 8).numpy()
    np.testing.assert_allclose(graph.astype(int), out.astype(int), atol=2)  # Pillow vs TensorFlow rounding


def test_decode_resize_makes_grayscale_rgb(tmp_path: Path) -> None:
    Image.new("L", (30, 30), 77).save(tmp_path / "g.jpg", quality=100)
    out = image_data.decode_resize(tmp_path / "g.jpg", 8)
    assert out.shape == (8, 8, 3)
    assert np.abs(out.astype(int) - 77).max() <= 1


def test_load_images_splits_by_hash_rule_rejects_broken_files_and_caches(tmp_path: Path, monkeypatch) -> None:
    root = _solid_folder(tmp_path / "data")
    (root / "black" / "broken.jpg").write_bytes(b"not a jpeg")
    cache = tmp_path / "cache"

    data = image_data.load_images(root, 12, cache_dir=cache)

    assert data.class_names == ["black", "white"]
    assert [r[0] for r in data.rejected] == ["white/notes.txt", "black/broken.jpg"]
    assert "not an image" in data.rejected[1][1]
    all_ids = [f"black/b{i:03d}.png" for i in range(20)] + [f"white/w{i:03d}.png" for i in range(20)]
    assert sorted(data.train.image_ids) == sorted(i for i in all_ids if split_of(i) == "train")
    assert sorted(data.eval.image_ids) == sorted(i for i in all_ids if split_of(i) == "eval")
    assert data.train.images.shape == (len(data.train), 12, 12, 3)
    for s in (data.train, data.eval):  # labels follow the folder, pixels follow the label
        np.testing.assert_array_equal(s.labels, [0 if i.startswith("black/") else 1 for i in s.image_ids])
        np.testing.assert_array_equal(s.images.reshape(len(s), -1).mean(axis=1), s.labels * 255.0)

    # mean/std over train pixels: a fraction p of white images gives mean p and std sqrt(p(1-p)).
    p = float(data.train.labels.mean())
    mean, std = data.pixel_mean_std()
    np.testing.assert_allclose(mean, [p] * 3, atol=1e-9)
    np.testing.assert_allclose(std, [math.sqrt(p * (1 - p))] * 3, atol=1e-9)

    assert len(list(cache.glob("images-12px-*.npz"))) == 1

    def no_decoding(*_args, **_kwargs):
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(image_data, "decode_resize", no_decoding)
    again = image_data.load_images(root, 12, cache_dir=cache)
    np.testing.assert_array_equal(again.train.images, data.train.images)
    assert again.eval.image_ids == data.eval.image_ids


def test_load_images_max_images_takes_a_balanced_subset(tmp_path: Path) -> None:
    root = _solid_folder(tmp_path / "data")
    data = image_data.load_images(root, 8, max_images=10, cache_dir=tmp_path / "cache")
    labels = np.concatenate([data.train.labels, data.eval.labels])
    assert len(labels) == 10
    assert np.bincount(labels).tolist() == [5, 5]


# --- plots -------------------------------------------------------------------------------------


def test_pca_2d_finds_the_principal_axes() -> None:
    rng = np.random.default_rng(0)
    # Points in the (x, y) plane of 5-D space, spread 10x more along x than y, offset along z.
    n = 200
    x = np.zeros((n, 5))
    x[:, 0], x[:, 1], x[:, 2] = 10 * rng.standard_normal(n), rng.standard_normal(n), 100.0
    xy = plots.pca_2d(x)
    assert xy.shape == (n, 2)
    np.testing.assert_allclose(xy.mean(axis=0), 0, atol=1e-9)
    var = xy.var(axis=0)
    assert var[0] > var[1] > 0
    with pytest.raises(ValueError):
        plots.pca_2d(np.ones(3))


def test_plots_write_small_pngs(tmp_path: Path) -> None:
    history = {"loss": [-0.1, -0.5, -0.7], "collapse_std": [0.9, 0.8, 0.85], "knn_accuracy": [None, 0.4, math.nan]}
    curves = plots.plot_training_curves(history, tmp_path / "c" / "curves.png", title="t")
    rng = np.random.default_rng(1)
    emb = plots.plot_embedding_map(rng.normal(size=(60, 16)), np.arange(60) % 3, ["a", "b", "c"], tmp_path / "e.png")
    for path in (curves, emb):
        data = path.read_bytes()
        assert data[:8] == PNG_MAGIC
        assert len(data) < 200_000
    with pytest.raises(ValueError, match="labels"):
        plots.plot_embedding_map(np.ones((4, 3)), [0, 1], ["a", "b"], tmp_path / "bad.png")
    with pytest.raises(ValueError):
        plots.plot_training_curves({"loss": []}, tmp_path / "empty.png")


# --- the command -------------------------------------------------------------------------------


def test_summarize_means_stds_and_gains() -> None:
    runs = [
        {"trained": {"linear_probe": 0.7, "knn": 0.6}, "random_init": {"linear_probe": 0.5, "knn": 0.4}},
        {"trained": {"linear_probe": 0.8, "knn": 0.6}, "random_init": {"linear_probe": 0.5, "knn": 0.5}},
    ]
    s = quality.summarize(runs)
    assert s["trained.linear_probe"] == {"mean": 0.75, "std": round(math.sqrt(0.005), 4)}
    assert s["trained.knn"] == {"mean": 0.6, "std": 0.0}
    assert s["random_init.knn"]["mean"] == 0.45
    assert s["gain.linear_probe"]["mean"] == 0.25
    assert s["gain.knn"]["mean"] == 0.15
    assert quality.summarize(runs[:1])["trained.knn"]["std"] == 0.0
    # With the cheap baselines, the gain a user reads is over the strongest one of each seed.
    runs[0]["cheap_baselines"] = {"random_filters": {"linear_probe": 0.75, "knn": 0.3}}
    runs[1]["cheap_baselines"] = {"random_filters": {"linear_probe": 0.6, "knn": 0.55}}
    s = quality.summarize(runs)
    assert s["random_filters.linear_probe"]["mean"] == 0.675
    assert s["gain_over_strongest.linear_probe"] == {"mean": 0.075, "baselines": ["random_filters"]}  # -0.05, +0.2
    assert s["gain_over_strongest.knn"] == {"mean": 0.125, "baselines": ["random_filters", "random_init"]}


def test_train_batches_are_full_shuffled_epochs() -> None:
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    it = quality.train_batches(images, 3, seed=0)
    first_epoch = [next(it)[0] for _ in range(3)]  # 10 // 3 = 3 full batches, 1 image left out
    assert all(b.shape == (3, 1, 1, 1) for b in first_epoch)
    seen = np.concatenate(first_epoch).ravel()
    assert len(set(seen.tolist())) == 9


@pytest.mark.parametrize(
    "bad", [["--epochs", "0"], ["--batch-size", "0"], ["--max-images", "1"], ["--backend", "torch"],
            ["--eval-every", "-1"], ["--precision", "float32"], ["--crop-min-scale", "0"], ["--first-seed", "-1"]],
)  # fmt: skip
def test_cli_rejects_bad_arguments(bad: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        quality.main(["--data-dir", "x", *bad])
    assert exc.value.code == 2


def test_result_stem_names_the_setting() -> None:
    args = quality.build_parser().parse_args(
        ["--data-dir", "d", "--backend", "jax", "--backbone", "resnet18", "--image-size", "64", "--epochs", "5"]
    )
    assert quality.result_stem(args) == "quality-jax-resnet18-64px-5ep"
    args.max_images = 100
    assert quality.result_stem(args) == "quality-jax-resnet18-64px-5ep-100img"
    args.first_seed, args.tag = 1, "s7"
    assert quality.result_stem(args) == "quality-jax-resnet18-64px-5ep-100img-seed1-s7"


def _pattern_folder(root: Path, per_class: int = 16, size: int = 40) -> Path:
    """Three classes of noisy stripes (horizontal, vertical, diagonal) as JPEGs."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    patterns = {"horizontal": yy, "vertical": xx, "diagonal": xx + yy}
    for name, coord in patterns.items():
        for i in range(per_class):
            period = rng.integers(4, 10)
            base = (np.sin(2 * np.pi * coord / period)[..., None] * 100 + 128) * rng.uniform(0.5, 1.0, 3)
            img = np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / name / f"{name[0]}{i:03d}.jpg")
    return root


def _run_benchmark(tmp_path: Path, backend: str, *extra: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """`main([...])` in a fresh interpreter (Keras picks its backend once per process); the child also
    reports whether TensorFlow ended up imported."""
    data_dir = _pattern_folder(tmp_path / "data")
    argv = ["--data-dir", str(data_dir), "--backend", backend, "--backbone", "resnet18", "--image-size", "32",
            "--batch-size", "8", "--max-images", "45", "--output-dir", str(tmp_path / "results"),
            "--cache-dir", str(tmp_path / "cache"), *extra]  # fmt: skip
    code = (
        "import sys\n"
        "from benchmarks.quality import main\n"
        f"rc = main({argv!r})\n"
        "print('TF_IMPORTED' if 'tensorflow' in sys.modules else 'TF_NOT_IMPORTED')\n"
        "sys.exit(rc)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc, [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_end_to_end_on_tensorflow(tmp_path: Path) -> None:
    proc, lines = _run_benchmark(tmp_path, "tensorflow", "--epochs", "1")
    assert proc.stdout.strip().endswith("TF_IMPORTED")
    rec, summary = lines
    assert (rec["backend"], rec["epochs"], rec["precision"]) == ("tensorflow", 1, "float32")
    assert set(rec["history"]) >= {"loss", "collapse_std", "learning_rate"}
    assert summary["summary"]["trained.knn"]["mean"] == rec["trained"]["knn"]
    assert set(rec["cheap_baselines"]) == {"random_filters", "colour_histograms"}
    assert summary["summary"]["random_filters.knn"]["mean"] == rec["cheap_baselines"]["random_filters"]["knn"]
    assert (tmp_path / "results" / "quality-tensorflow-resnet18-32px-1ep-45img.json").exists()


def test_recipe_table_averages_the_seeds_of_a_tag_and_gains_over_the_strongest(tmp_path: Path) -> None:
    from benchmarks import recipe_table

    def result(seed: int, trained: float, filters: float) -> dict:
        return {
            "seed": seed,
            "width": 0.5,
            "image_size": 64,
            "stored_size": 96,
            "batch_size": 64,
            "epochs": 20,
            "steps": 820,
            "precision": "mixed_bfloat16",
            "train_s": 60.0 * (seed + 1),
            "wall_s": 120.0,
            "views_per_s": 300.0,
            "trained": {"linear_probe": trained, "knn": 0.6},
            "random_init": {"linear_probe": 0.45, "knn": 0.4},
            "cheap_baselines": {
                "random_filters": {"linear_probe": filters, "knn": 0.62},
                "colour_histograms": {"linear_probe": 0.5, "knn": 0.5},
            },
        }

    (tmp_path / "quality-x-20ep-s7-ref.json").write_text(json.dumps({"runs": [result(0, 0.70, 0.65)]}))
    (tmp_path / "quality-x-20ep-seed1-s7-ref.json").write_text(json.dumps({"runs": [result(1, 0.60, 0.66)]}))
    assert recipe_table.tag_of(tmp_path / "quality-x-20ep-seed1-s7-ref.json") == "s7-ref"
    assert recipe_table.tag_of(Path("quality-x-20ep-500img-seed1-s7-ref.json")) == "500img-s7-ref"
    runs = [result(0, 0.70, 0.65), result(1, 0.60, 0.66)]
    line = recipe_table.row("s7-ref", runs)
    # seeds 0 and 1; 1.5 min of training on average; strongest cheap 0.655 / 0.620; gain (0.05 - 0.06) / 2
    # linear and 0.6 - 0.62 kNN.
    assert "| s7-ref |" in line and "| 0,1 | 1.5 / 2.0 |" in line
    assert "| 0.655 / 0.620 | 0.650 / 0.600 | -0.005 / -0.020 |" in line
