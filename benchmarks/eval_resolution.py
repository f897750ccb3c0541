"""Does a trained encoder score better on views larger than its training crops?

    python -m benchmarks.eval_resolution --model DIR --sizes 64 80 96

Random-resized crops show objects larger during training than the whole-image evaluation view
does, so evaluating at a larger size can match the apparent object size ("FixRes": Touvron et al.,
"Fixing the train-test resolution discrepancy", NeurIPS 2019, Sec. 3). This measures it for one
SimSiam encoder (`--model`: a folder with `encoder.json` and `encoder.weights.h5`, as the SimSiam
Trainer writes under its model artifact's `Format-Serving/`), rebuilt at each size with the trained
weights: the eval split's linear probe and kNN (`models.evaluation.frozen_feature_scores`), and the
cheap baselines on the same view (`models.baselines.cheap_baseline_scores`), so that a gain is not
just the larger view's. Photos decoded with Pillow at `--stored-size` (`benchmarks.image_data`), the
split by the ExampleGen's hash of the file name.

Writes benchmarks/results/eval_resolution-<name>.json ({"command", "device", "model", "counts":
{"train", "eval"}, "sizes": {size: {"simsiam": {...}, "random_filters": {...}, "colour_histograms":
{...}}}}). TensorFlow backend (the Trainer's).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
FLOWERS = Path(__file__).resolve().parents[2] / "shared" / "flowers" / "flower_photos"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.eval_resolution", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="folder with encoder.json and encoder.weights.h5")
    p.add_argument("--data-dir", default=str(FLOWERS), help="class folders of photos (default: Flowers)")
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 80, 96], help="evaluation view sizes, px")
    p.add_argument(
        "--stored-size", type=int, default=0, help="photos decoded and stored at this size, px (default: the recipe's)"
    )
    p.add_argument("--max-images", type=int, default=0, help="use at most N photos (default 0: all)")
    p.add_argument("--cache-dir", default=None, help="decoded-photo cache (default: benchmarks.image_data's)")
    p.add_argument("--name", default="cpu", help="results file suffix")
    p.add_argument("--out", default="", help="results JSON (default: benchmarks/results/eval_resolution-NAME.json)")
    args = p.parse_args(argv)
    if not Path(args.model, "encoder.json").is_file():
        p.error(f"--model {args.model}: no encoder.json there (the SimSiam Trainer's Format-Serving folder has one)")
    recipe = json.loads(Path(args.model, "encoder.json").read_text())
    args.stored_size = args.stored_size or recipe.get("stored_size") or recipe["image_size"]
    if min(args.sizes) < 8 or max(args.sizes) > args.stored_size:
        p.error(f"--sizes must lie in 8..--stored-size ({args.stored_size}), got {args.sizes}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import keras
    import numpy as np

    from benchmarks.image_data import load_images
    from benchmarks.machine import describe_device
    from components.train.encoder_io import load_encoder
    from models.augment import eval_view
    from models.baselines import cheap_baseline_scores
    from models.evaluation import frozen_feature_scores

    data = load_images(args.data_dir, args.stored_size, max_images=args.max_images or None, cache_dir=args.cache_dir)
    train, held = data.train, data.eval
    print(f"[eval_resolution] {len(train)} train, {len(held)} eval photos at {args.stored_size} px", flush=True)
    results = {}
    for size in args.sizes:
        start = time.time()
        encoder, recipe = load_encoder(args.model, image_size=size)

        def embed(images, encoder=encoder, size=size):
            views = (
                keras.ops.convert_to_numpy(eval_view(images[i : i + 512], size)) for i in range(0, len(images), 512)
            )
            return np.concatenate([encoder.predict(v, batch_size=256, verbose=0) for v in views])

        scores = frozen_feature_scores(embed(train.images), train.labels, embed(held.images), held.labels)
        baselines = cheap_baseline_scores(train.images, train.labels, held.images, held.labels, size)
        results[size] = {"simsiam": scores, **baselines}
        row = " | ".join(f"{name} {r['linear_probe']:.3f} / {r['knn']:.3f}" for name, r in results[size].items())
        print(f"[eval_resolution] {size} px (trained at {recipe['image_size']}): {row} ({time.time() - start:.0f} s)")
    record = {
        "command": "python -m benchmarks.eval_resolution " + " ".join(argv if argv is not None else sys.argv[1:]),
        "device": describe_device("tensorflow")[0],
        "model": {k: recipe.get(k) for k in ("backbone", "image_size", "stored_size", "eval_size", "width")},
        "counts": {"train": len(train), "eval": len(held)},
        "sizes": results,
    }
    out = Path(args.out or RESULTS_DIR / f"eval_resolution-{args.name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
