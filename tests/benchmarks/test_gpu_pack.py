"""`scripts/gpu-quality`: the pack for a JAX-only GPU machine, run end to end here on the CPU.

The pack's run.sh is the JAX end-to-end test of `benchmarks.quality`: a fresh interpreter in which
importing TensorFlow fails, the `gpu` recipe's flags with a tiny image size, one seed, a time plan.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from benchmarks import gpu_pack, quality
from components.ingest.splits import split_of
from pipeline.configs import profile_config
from tests import background
from tests.benchmarks.test_quality_benchmark import PNG_MAGIC, _pattern_folder

REPO = Path(__file__).resolve().parents[2]


def test_run_sh_flags_are_the_gpu_profiles_recipe() -> None:
    recipe = profile_config("gpu").simsiam
    flags = gpu_pack.recipe_flags("gpu", {})
    args = quality.build_parser().parse_args(["--data-dir", "d", *flags])  # every flag is one quality knows
    assert (args.image_size, args.stored_size, args.batch_size, args.epochs) == (128, 144, 128, recipe.epochs)
    assert (args.base_lr, args.weight_decay, args.warmup_epochs) == (recipe.base_lr, recipe.weight_decay, 10)
    assert (args.width, args.jitter_strength, args.grayscale_prob) == (1.0, 1.0, 0.2)
    assert args.precision == "auto"  # bf16 on the GPU, as the pipeline's `auto`
    tiny = quality.build_parser().parse_args(["--data-dir", "d", *gpu_pack.recipe_flags("gpu", {"image-size": 32})])
    assert (tiny.image_size, tiny.stored_size, tiny.eval_size) == (32, None, None)  # both follow the new size
    cpu = quality.build_parser().parse_args(["--data-dir", "d", *gpu_pack.recipe_flags("smoke", {})])
    assert (cpu.image_size, cpu.stored_size, cpu.eval_size) == (32, 40, 40)  # scored as the pipeline scores it


@background.background_check("gpu_pack_run")
def _gpu_pack_run(tmp_path: Path) -> dict:
    """`scripts/gpu-quality prepare` on a small pattern folder, then the pack's `run` with TensorFlow blocked."""
    data_dir = _pattern_folder(tmp_path / "data")
    pack = tmp_path / "pack"
    prepare = subprocess.run(
        [
            str(REPO / "scripts" / "gpu-quality"),
            "prepare",
            "--out",
            str(pack),
            "--data-dir",
            str(data_dir),
            "--no-wheels",
            "--max-images",
            "45",
            "--image-size",
            "32",
            "--batch-size",
            "8",
            "--epochs",
            "3",
            "--warmup-epochs",
            "0",
            "--eval-every",
            "1",
            "--width",
            "0.25",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHON": sys.executable},
    )
    if prepare.returncode != 0:
        return {"tmp_path": tmp_path, "data_dir": data_dir, "pack": pack, "prepare": prepare, "run": None}
    blocker = tmp_path / "no-tensorflow" / "tensorflow"  # importing TensorFlow fails in the run
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('the GPU pack must not import TensorFlow')\n")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PYTHON": sys.executable,
        "OUT": str(tmp_path / "out"),
        "BUDGET_MIN": "4",
        "TMPDIR": str(tmp_path),
        "PYTHONPATH": str(blocker.parent),
    }
    run = subprocess.run(
        [str(REPO / "scripts" / "gpu-quality"), "run"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**env, "PACK": str(pack)},
    )
    return {"tmp_path": tmp_path, "data_dir": data_dir, "pack": pack, "prepare": prepare, "run": run}


@pytest.fixture(scope="module")
def gpu_pack_run() -> dict:
    return background.result("gpu_pack_run")


@pytest.mark.slow
def test_pack_runs_the_recipe_on_jax_without_tensorflow(gpu_pack_run) -> None:
    tmp_path, data_dir, pack = gpu_pack_run["tmp_path"], gpu_pack_run["data_dir"], gpu_pack_run["pack"]
    prepare, run = gpu_pack_run["prepare"], gpu_pack_run["run"]
    assert prepare.returncode == 0, prepare.stderr[-3000:]
    assert "images: 45 at 40 px" in prepare.stdout
    assert (pack / "code" / "models" / "simsiam.py").read_bytes() == (REPO / "models" / "simsiam.py").read_bytes()
    packed = sorted(str(p.relative_to(pack / "flowers")) for p in (pack / "flowers").rglob("*.jpg"))
    assert len(packed) == 45 and set(packed) <= {str(p.relative_to(data_dir)) for p in data_dir.rglob("*.jpg")}
    with Image.open(pack / "flowers" / packed[0]) as img:
        assert img.size == (40, 40) and img.format == "JPEG"  # stored once at the recipe's stored size

    assert run.returncode == 0, run.stderr[-4000:]
    assert "time plan:" in run.stderr and "epoch 1/" in run.stderr

    [result_file] = (tmp_path / "out").glob("quality-jax-resnet18-32px-*ep.json")
    saved = json.loads(result_file.read_text())
    [rec] = saved["runs"]
    n_eval = sum(split_of(p) == "eval" for p in packed)
    assert (rec["backend"], rec["n_train"], rec["n_eval"]) == ("jax", 45 - n_eval, n_eval)
    assert 1 <= rec["epochs"] <= 3 and rec["time_plan"]["epochs"] == rec["epochs"]
    assert rec["time_plan"]["step_s"] > 0 and rec["time_plan"]["budget_s"] <= 240
    assert (rec["base_lr"], rec["weight_decay"], rec["stored_size"]) == (0.06, 5e-4, 40)
    for variant in ("trained", "random_init"):
        for metric in ("linear_probe", "knn"):
            assert 0.0 <= rec[variant][metric] <= 1.0
    assert rec["views_per_s"] > 0 and rec["device"].startswith("cpu")
    assert len(rec["history"]["loss"]) == rec["epochs"] and all(-1 <= v <= 1 for v in rec["history"]["loss"])
    assert round(rec["history"]["knn_accuracy"][-1], 4) == rec["trained"]["knn"]  # same encoder, same split
    assert saved["summary"]["trained.knn"]["mean"] == rec["trained"]["knn"]
    for suffix in ("curves", "embedding", "embedding-random"):
        png = result_file.with_name(f"{result_file.stem}-{suffix}.png").read_bytes()
        assert png[:8] == PNG_MAGIC and len(png) < 200_000
