"""Pack this checkout for a GPU machine that has JAX but no TensorFlow and no package index.

    scripts/gpu-quality prepare [--out build/gpu-pack]      # here: code + wheels + images + run.sh
    OUT=/somewhere bash build/gpu-pack/run.sh               # there: the `gpu` recipe on JAX

The machines this project may borrow (docs/gpu.md) run Python 3.12 with numpy 2, JAX
and PyTorch, reach no package registry, and accept at most 64 MiB of files per call. The pack holds:

- ``code/``: the packages ``benchmarks.quality`` needs (``models``, ``serving``, ``components``,
  ``pipeline``, ``benchmarks``), as Python files of this checkout;
- ``wheels/``: a Keras release that supports recent JAX (3.15.1, checked here on Python 3.11 with
  numpy 2 and JAX 0.10: docs/gpu.md) and what it needs beyond JAX and numpy, as Python 3.12 manylinux
  wheels, plus Pillow; ``run.sh`` unpacks them into ``deps/`` (a wheel is a zip), no pip needed;
- ``flowers/``: every image, decoded and resized once to the recipe's stored size exactly as
  ``benchmarks.image_data`` does, re-encoded as JPEG (quality 90) under its original class folder
  and file name, so the hash split is the same (about 25 MB for 3,119 photos at 144 px);
- ``run.sh``: ``python -m benchmarks.quality --backend jax`` with the ``gpu`` profile's recipe
  (pipeline/configs.py) and ``--time-budget-min``, writing its JSON and plots under ``$OUT``.

Nothing here imports TensorFlow or Keras.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from benchmarks.image_data import decode_resize, list_images, select_subset
from pipeline.configs import profile_config

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "serving", "components", "pipeline", "benchmarks")
KERAS = "keras==3.15.1"
# Keras' dependencies that a JAX install does not bring (numpy and ml-dtypes come with JAX), and Pillow.
WHEELS = (
    KERAS,
    "absl-py",
    "namex",
    "optree",
    "h5py",
    "rich",
    "markdown-it-py",
    "mdurl",
    "pygments",
    "packaging",
    "pillow",
)
MAX_PACK_BYTES = 64 * 2**20
JPEG_QUALITY = 90

RUN_SH = """#!/usr/bin/env bash
# The `gpu` recipe on JAX, on a machine with Python 3.12 + JAX (+ numpy 2) and no TensorFlow.
# Written by `scripts/gpu-quality prepare`; results go to $OUT (default: ./out next to this file).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${{OUT:-$here/out}}
py=${{PYTHON:-python3}}
mkdir -p "$out" "$here/deps"
# A wheel is a zip: unpacking it onto the path is an install without pip or an index.
"$py" -c 'import sys, zipfile, pathlib
for w in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")): zipfile.ZipFile(w).extractall(sys.argv[2])' \\
    "$here/wheels" "$here/deps"
export PYTHONPATH="$here/deps:$here/code${{PYTHONPATH:+:$PYTHONPATH}}" KERAS_BACKEND=jax
"$py" -c 'import jax, keras, numpy
print("jax", jax.__version__, jax.devices(), "keras", keras.__version__, "numpy", numpy.__version__)'
exec "$py" -m benchmarks.quality --data-dir "$here/flowers" --backend jax {flags} \\
    --time-budget-min "${{BUDGET_MIN:-{budget}}}" --output-dir "$out" \
    --cache-dir "${{TMPDIR:-/tmp}}/simsiam-pack-cache" "$@"
"""


def recipe_flags(profile: str, overrides: dict) -> list[str]:
    """`benchmarks.quality` flags for `profile`'s SimSiam recipe (pipeline/configs.py), with overrides."""
    recipe = profile_config(profile).simsiam
    values = {
        "backbone": recipe.backbone,
        "image-size": recipe.image_size,
        "stored-size": recipe.stored_size,
        "eval-size": recipe.eval_size,
        "width": recipe.width,
        "batch-size": recipe.batch_size,
        "epochs": recipe.epochs,
        "base-lr": recipe.base_lr,
        "weight-decay": recipe.weight_decay,
        "warmup-epochs": recipe.warmup_epochs,
        "jitter-strength": recipe.jitter_strength,
        "grayscale-prob": recipe.grayscale_prob,
        "precision": "auto",
        "eval-every": max(1, recipe.epochs // 8),
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "image-size" in overrides:  # the sizes tied to the training size are derived anew unless given
        for key in ("stored-size", "eval-size"):
            if key not in overrides:
                values.pop(key)
    return [part for key, value in values.items() for part in (f"--{key}", str(value))]


def copy_code(dest: Path) -> int:
    """Copies the packages' .py files; returns their total size in bytes."""
    total = 0
    for package in PACKAGES:
        for source in sorted((REPO / package).rglob("*.py")):
            target = dest / source.relative_to(REPO)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            total += source.stat().st_size
    return total


def pack_images(data_dir: Path, dest: Path, stored_size: int, max_images: int | None) -> tuple[int, int]:
    """Re-encodes every accepted image at `stored_size`; returns (images written, images rejected)."""
    ids, labels, _, rejected = list_images(data_dir)
    if max_images is not None:
        ids = [ids[i] for i in select_subset(labels, max_images)]

    def one(image_id: str) -> None:
        target = dest / image_id
        target.parent.mkdir(parents=True, exist_ok=True)
        pixels = decode_resize(data_dir / image_id, stored_size)
        Image.fromarray(pixels).save(target, "JPEG", quality=JPEG_QUALITY)

    with ThreadPoolExecutor() as pool:
        list(pool.map(one, ids))
    return len(ids), len(rejected)


def download_wheels(dest: Path, python_version: str) -> None:
    """`pip download` of WHEELS as manylinux wheels for `python_version` (needs the package index)."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        python_version,
        "--implementation",
        "cp",
        "--platform",
        "manylinux2014_x86_64",
        "--platform",
        "manylinux_2_17_x86_64",
        "--platform",
        "manylinux_2_28_x86_64",
        "-d",
        str(dest),
        *WHEELS,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"error: downloading the wheels failed ({shlex.join(command)}):\n{result.stderr[-2000:]}")


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/gpu-quality prepare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, default=REPO / "build" / "gpu-pack", help="the pack folder (replaced)")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=REPO.parent / "shared" / "flowers" / "flower_photos",
        help="a folder of class folders",
    )
    p.add_argument("--profile", default="gpu", help="the run profile whose SimSiam recipe run.sh trains")
    p.add_argument(
        "--budget-min",
        type=float,
        default=7.0,
        help="run.sh's default --time-budget-min (7: the run ends within 8 minutes with start-up)",
    )
    p.add_argument("--python-version", default="3.12", help="the GPU machine's Python, for the wheels")
    p.add_argument(
        "--no-wheels",
        action="store_true",
        help="no wheels: run.sh then uses the Keras of the Python it runs with (tests, machines with Keras)",
    )
    p.add_argument("--max-images", type=int, help="pack at most N images (round-robin over classes; tests)")
    tiny = p.add_argument_group("recipe overrides (tests use a tiny setting)")
    for flag in ("image-size", "batch-size", "epochs", "warmup-epochs", "eval-every"):
        tiny.add_argument(f"--{flag}", type=int)
    tiny.add_argument("--width", type=float)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {
        k: getattr(args, k.replace("-", "_"))
        for k in ("image-size", "batch-size", "epochs", "warmup-epochs", "eval-every", "width")
    }
    flags = recipe_flags(args.profile, overrides)
    stored_size = int(flags[flags.index("--stored-size") + 1]) if "--stored-size" in flags else None
    if stored_size is None:
        from models.config import default_stored_size

        stored_size = default_stored_size(int(flags[flags.index("--image-size") + 1]))
        flags += ["--stored-size", str(stored_size)]
    if not args.data_dir.is_dir():
        raise SystemExit(f"error: no image folder at {args.data_dir}")

    out = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    code_bytes = copy_code(out / "code")
    print(f"code: {code_bytes / 1e6:.1f} MB of Python from {', '.join(PACKAGES)}", flush=True)
    packed, rejected = pack_images(args.data_dir, out / "flowers", stored_size, args.max_images)
    print(
        f"images: {packed} at {stored_size} px ({folder_bytes(out / 'flowers') / 1e6:.1f} MB), "
        f"{rejected} rejected files left out",
        flush=True,
    )
    (out / "wheels").mkdir()
    if not args.no_wheels:
        download_wheels(out / "wheels", args.python_version)
        print(
            f"wheels: {len(list((out / 'wheels').glob('*.whl')))} for Python {args.python_version} "
            f"({folder_bytes(out / 'wheels') / 1e6:.1f} MB)",
            flush=True,
        )
    run_sh = out / "run.sh"
    run_sh.write_text(RUN_SH.format(flags=shlex.join(flags), budget=args.budget_min))
    run_sh.chmod(0o755)
    total = folder_bytes(out)
    print(f"pack: {out} ({total / 2**20:.1f} MiB of the 64 MiB a call may carry)", flush=True)
    if total > MAX_PACK_BYTES:
        raise SystemExit(f"error: the pack is {total / 2**20:.1f} MiB, over 64 MiB")
    print(f"run there: OUT=<results folder> bash {run_sh.relative_to(REPO) if run_sh.is_relative_to(REPO) else run_sh}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
