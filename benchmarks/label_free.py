"""Label-free gate measurements: RankMe and collapse std of trained, random-init and collapsed encoders.

    python -m benchmarks.label_free --run /work/main/runs/cpu --collapse-steps 200
    python -m benchmarks.label_free --synthetic 256 --profile smoke

With ``--run``: a finished ``simsiam-tfx run`` output folder (its ``summary.json`` gives the SimSiam
recipe; its ``pipeline_root`` the latest SimSiamTrainer model and Transform examples). The stored
images of the Transform's eval split (the ExampleGen's hash split, ``components.ingest.splits.split_of``)
are embedded as the serving model embeds them (``image_u8`` -> ``eval_view`` -> encoder, the path after
the serving model's Transform layer) by (a) the trained encoder, (b) the same recipe at its random
initialisation (the Trainer's seed), (c) an encoder trained ``--collapse-steps`` steps from random init
on the train split WITHOUT stop-gradient (the SimSiam paper's collapsing ablation, Sec. 4.1), and
(d) a constant encoder (every row the same vector). With ``--synthetic N``: N random-pattern images
(a random 4x4 colour layout per image, upsampled) train the ``--profile`` recipe for its epochs, and the
barely-trained encoder is compared with its random init: what an end-to-end test on generated images
can expect from the gate.

For each: ``effective_rank`` (RankMe, uncentred, as published) and ``effective_rank_centred`` (rows
minus their mean), ``collapse_std``, and the rank ratio to random init. The gate's defaults
(components/evaluate/label_free.py) were chosen from these numbers.

stdout: one line per encoder, then the JSON. File: ``<output-dir>/label_free-<name>.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_OUTPUT_DIR = Path(__file__).resolve().parent / "results"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.label_free",
        description=__doc__.split("\n\n")[0],
        epilog="See the module docstring for what each encoder is.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="a `simsiam-tfx run` output folder (summary.json + pipeline_root)")
    source.add_argument(
        "--synthetic", type=int, metavar="N", help="train the --profile recipe on N random-pattern images"
    )
    p.add_argument("--profile", default="smoke", help="recipe for --synthetic (pipeline/configs.py; default smoke)")
    p.add_argument(
        "--collapse-steps",
        type=int,
        default=200,
        help="with --run: steps of no-stop-gradient training for the collapsed encoder (0: skip)",
    )
    p.add_argument("--collapse-lr", type=float, help="base learning rate of that training (default: the recipe's)")
    p.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR)
    p.add_argument("--name", help="result file stem suffix (default: the run folder's name, or synthetic-<profile>)")
    return p


def measures(embeddings: np.ndarray) -> dict[str, Any]:
    from models.evaluation import effective_rank, embedding_collapse_std

    return {
        "effective_rank": effective_rank(embeddings),
        "effective_rank_centred": effective_rank(embeddings - embeddings.mean(axis=0)),
        "encoder_spread": embedding_collapse_std(embeddings),
        "examples": int(embeddings.shape[0]),
        "dimension": int(embeddings.shape[1]),
    }


def latest_artifact(folder: Path) -> Path:
    """The highest-numbered execution folder below `folder` (TFX's `<component>/<output>/<id>`)."""
    ids = sorted((p for p in folder.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    if not ids:
        raise FileNotFoundError(f"no artifact under {folder}")
    return ids[-1]


def train_encoder(config, images: np.ndarray, mean, std):
    """The encoder of `build_simsiam(config)` after `config.epochs` epochs of `fit` on uint8 `images`,
    for the evaluation view (`eval_size`), as the pipeline hands it on and `random_init_encoder` builds it."""
    import keras

    from models.encoder import encoder_at_size
    from models.simsiam import build_simsiam, compile_simsiam

    steps_per_epoch = max(1, len(images) // config.batch_size)
    keras.utils.set_random_seed(config.seed)
    model = compile_simsiam(build_simsiam(config, mean=mean, std=std), config, steps_per_epoch)
    history = model.fit(
        images[: steps_per_epoch * config.batch_size], batch_size=config.batch_size, epochs=config.epochs, verbose=0
    )
    return encoder_at_size(model.encoder, config.eval_size), {
        k: [round(float(v), 4) for v in vals] for k, vals in history.history.items()
    }


def random_patterns(n: int, size: int, seed: int = 0) -> np.ndarray:
    """uint8 `[n, size, size, 3]`: each image a random 4x4 colour layout, nearest-upsampled."""
    cells = np.random.default_rng(seed).integers(0, 256, size=(n, 4, 4, 3), dtype=np.uint8)
    rep = math.ceil(size / 4)
    return cells.repeat(rep, axis=1).repeat(rep, axis=2)[:, :size, :size]


def from_run(run: Path, collapse_steps: int, collapse_lr: float | None = None) -> dict[str, Any]:
    from components.evaluate.label_free import random_init_encoder, read_stored_images
    from components.examples import tf_example_reader
    from components.train.encoder_io import load_encoder
    from models.config import SimSiamConfig
    from models.monitors import embed
    from pipeline.component_ids import SIMSIAM_TRAINER_ID, TRANSFORM_ID
    from pipeline.local_runner import SUMMARY_FILE, run_folder_paths

    summary = json.loads((run / SUMMARY_FILE).read_text())
    config_dict = summary["config"]["simsiam"]
    root = Path(run_folder_paths(str(run))[1])
    model_dir = latest_artifact(root / SIMSIAM_TRAINER_ID / "model") / "Format-Serving"
    examples = latest_artifact(root / TRANSFORM_ID / "transformed_examples")
    images = read_stored_images(tf_example_reader(), [str(examples / "Split-eval" / "*")])
    encoder, recipe = load_encoder(str(model_dir))
    out: dict[str, Any] = {"run": str(run), "model": str(model_dir), "examples": str(examples), "config": config_dict}
    results = {
        "trained": measures(embed(encoder, images)),
        "random_init": measures(embed(random_init_encoder(config_dict, recipe), images)),
    }
    constant = np.tile(embed(encoder, images[:1]), (len(images), 1))
    results["constant"] = measures(constant)
    if collapse_steps:
        config = SimSiamConfig.from_dict(config_dict)
        train = read_stored_images(tf_example_reader(), [str(examples / "Split-train" / "*")])
        epochs = max(1, math.ceil(collapse_steps / max(1, len(train) // config.batch_size)))
        config = dataclasses.replace(
            config, stop_gradient=False, epochs=epochs, warmup_epochs=0, base_lr=collapse_lr or config.base_lr
        )
        start = time.time()
        collapsed, history = train_encoder(config, train, recipe["mean"], recipe["std"])
        results["no_stop_gradient"] = {
            **measures(embed(collapsed, images)),
            "steps": epochs * (len(train) // config.batch_size),
            "base_lr": config.base_lr,
            "train_s": round(time.time() - start, 1),
            "history": history,
        }
    out["encoders"] = results
    return out


def from_synthetic(n: int, profile: str) -> dict[str, Any]:
    from components.evaluate.label_free import random_init_encoder
    from models.monitors import embed
    from pipeline.configs import profile_config

    config = profile_config(profile).simsiam
    images = random_patterns(n, config.stored_size)
    held_out = random_patterns(max(n // 4, 32), config.stored_size, seed=1)
    mean = (images / 255.0).reshape(-1, 3).mean(axis=0).tolist()
    std = (images / 255.0).reshape(-1, 3).std(axis=0).tolist()
    recipe = {"mean": mean, "std": std}  # what the Transform's analyzers would give
    start = time.time()
    trained, history = train_encoder(config, images, recipe["mean"], recipe["std"])
    train_s = round(time.time() - start, 1)
    results = {
        "trained": {
            **measures(embed(trained, held_out)),
            "train_s": train_s,
            "history": history,
        },
        "random_init": measures(embed(random_init_encoder(config.to_dict(), recipe), held_out)),
    }
    return {"synthetic": n, "profile": profile, "config": config.to_dict(), "encoders": results}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.run:
        out = from_run(args.run, args.collapse_steps, args.collapse_lr)
    else:
        out = from_synthetic(args.synthetic, args.profile)
    random_rank = out["encoders"]["random_init"]["effective_rank"]
    random_centred = out["encoders"]["random_init"]["effective_rank_centred"]
    for name, m in out["encoders"].items():
        m["rank_ratio"] = m["effective_rank"] / random_rank
        m["rank_ratio_centred"] = m["effective_rank_centred"] / random_centred
        print(
            f"{name:>17}: RankMe {m['effective_rank']:8.3f} (x{m['rank_ratio']:.3f} random init)  centred "
            f"{m['effective_rank_centred']:8.3f} (x{m['rank_ratio_centred']:.3f})  encoder_spread "
            f"{m['encoder_spread']:.4f}  [{m['examples']} x {m['dimension']}]"
        )
    out["command"] = "python -m benchmarks.label_free " + " ".join(sys.argv[1:] if argv is None else argv)
    name = args.name or (args.run.resolve().name if args.run else f"synthetic-{args.profile}")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    path = args.output_dir / f"label_free-{name}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
