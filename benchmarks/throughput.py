"""SimSiam training throughput in augmented views per second (two views per image).

    python -m benchmarks.throughput --backend jax --backbone resnet18 --image-size 64 --batch-size 128 --steps 20

Times whole compiled training steps (augmentation, both encoder passes, heads, loss, SGD) on
synthetic uint8 images, after `--warmup-steps` steps that include compilation. Prints one JSON line
and writes it to benchmarks/results/throughput-<backend>-<backbone>-<size>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.machine import describe_device

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("tensorflow", "jax"), required=True)
    parser.add_argument("--backbone", choices=("resnet18", "resnet50"), default="resnet18")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--stored-size", type=int, default=None, help="input (stored) size; default image size x 9/8")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup-steps", type=int, default=3, help="untimed steps first (compilation)")
    parser.add_argument("--small-stem", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--width", type=float, default=1.0, help="backbone channel multiplier")
    parser.add_argument("--jit-compile", choices=("auto", "on", "off"), default="auto")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="auto: bf16 (mixed bfloat16) with a GPU, fp32 without",
    )
    parser.add_argument(
        "--torch-python",
        metavar="PYTHON",
        help="also time benchmarks/torch_reference.py (the official PyTorch recipe) with this "
        "interpreter, right after this step, and report the ratio",
    )
    parser.add_argument("--torch-workers", type=int, default=2, help="DataLoader workers of the PyTorch reference")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup_steps < 1 or args.batch_size < 2:
        parser.error("need --steps >= 1, --warmup-steps >= 1, --batch-size >= 2")
    return args


class _StepTimer:
    """Wall time from the end of the last warm-up step to the end of the epoch.

    Keras syncs the (asynchronous) JAX state before `on_epoch_end`, so the clock stops only once
    the last step has really finished.
    """

    def __init__(self, warmup_steps: int):
        import keras

        class Callback(keras.callbacks.Callback):
            def on_train_batch_end(cb, batch, logs=None):  # noqa: N805
                if batch == warmup_steps - 1:
                    keras.ops.convert_to_numpy((logs or {}).get("loss", 0.0))  # waits for the step
                    self.start = time.perf_counter()

            def on_epoch_end(cb, epoch, logs=None):  # noqa: N805
                self.end = time.perf_counter()
                self.logs = dict(logs or {})

        self.callback = Callback()
        self.start = self.end = 0.0
        self.logs: dict = {}


def run(args: argparse.Namespace) -> dict:
    os.environ["KERAS_BACKEND"] = args.backend
    import keras
    import numpy as np

    if keras.backend.backend() != args.backend:
        raise RuntimeError(f"Keras was already imported with backend {keras.backend.backend()!r}")
    from models.backbones import resolve_small_stem
    from models.config import SimSiamConfig, configure_precision
    from models.simsiam import build_simsiam, compile_simsiam

    device, has_gpu = describe_device(args.backend)
    precision = configure_precision(has_gpu, args.precision)
    small_stem = {"auto": None, "on": True, "off": False}[args.small_stem]
    config = SimSiamConfig(
        backbone=args.backbone,
        image_size=args.image_size,
        stored_size=args.stored_size,
        small_stem=small_stem,
        width=args.width,
        batch_size=args.batch_size,
        epochs=1,
        warmup_epochs=0,
    )
    keras.utils.set_random_seed(0)
    model = build_simsiam(config)
    total_steps = args.warmup_steps + args.steps
    jit = {"auto": "auto", "on": True, "off": False}[args.jit_compile]
    compile_simsiam(model, config, steps_per_epoch=total_steps, jit_compile=jit)
    # Smooth random images: cheap to make, and not all-noise for the colour ops.
    rng = np.random.default_rng(0)
    stored = config.stored_size
    low = rng.integers(0, 256, (args.batch_size, 8, 8, 3)).astype("float32")
    images = np.repeat(np.repeat(low, stored // 8 + 1, 1), stored // 8 + 1, 2)
    images = images[:, :stored, :stored].astype("uint8")
    data = np.concatenate([np.roll(images, i, axis=0) for i in range(total_steps)])
    timer = _StepTimer(args.warmup_steps)
    model.fit(data, batch_size=args.batch_size, epochs=1, shuffle=False, verbose=0, callbacks=[timer.callback])
    seconds = timer.end - timer.start
    views = 2 * args.batch_size * args.steps
    return {
        "benchmark": "throughput",
        "backend": args.backend,
        "backbone": args.backbone,
        "image_size": args.image_size,
        "stored_size": stored,
        "batch_size": args.batch_size,
        "small_stem": resolve_small_stem(args.image_size, small_stem),
        "width": args.width,
        "jit_compile": bool(model.jit_compile),
        "precision": precision,
        "steps": args.steps,
        "seconds": round(seconds, 3),
        "step_s": round(seconds / args.steps, 4),
        "views_per_s": round(views / seconds, 1),
        "images_per_s": round(views / 2 / seconds, 1),
        "final_loss": round(float(timer.logs.get("loss", float("nan"))), 4),
        "device": device,
        "keras": keras.__version__,
    }


def torch_reference(args: argparse.Namespace, stored_size: int) -> dict:
    """The PyTorch reference step timed in a subprocess (its own Python with torch), as one JSON record."""
    script = Path(__file__).resolve().parent / "torch_reference.py"
    command = [
        args.torch_python,
        str(script),
        "--image-size",
        str(args.image_size),
        "--stored-size",
        str(stored_size),
        "--batch-size",
        str(args.batch_size),
        "--steps",
        str(args.steps),
        "--warmup-steps",
        str(args.warmup_steps),
        "--workers",
        str(args.torch_workers),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"error: the PyTorch reference failed ({' '.join(command)}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reference = None
    if args.torch_python:  # first: a broken reference interpreter fails before the long run
        from models.config import default_stored_size

        reference = torch_reference(args, args.stored_size or default_stored_size(args.image_size))
    result = run(args)
    if reference is not None:
        result["torch_reference"] = reference
        result["ratio_vs_torch"] = round(result["views_per_s"] / reference["views_per_s"], 3)
    line = json.dumps(result)
    print(line)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    name = f"throughput-{args.backend}-{args.backbone}-{args.image_size}-{result['precision']}"
    name += "-vs-torch.json" if args.torch_python else ".json"
    (args.output_dir / name).write_text(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
