"""The README's recipe table from `benchmarks.quality` result files: one markdown row per run.

    python -m benchmarks.recipe_table benchmarks/results/quality-tensorflow-resnet18-64px-*-s*.json

Columns: the run's tag and settings, its minutes (training, and the whole run with scoring), views/s,
and linear-probe / kNN accuracy on the eval split for the random-init encoder and after SimSiam.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def row(path: Path) -> str:
    """One markdown table row for one result file (its first seed)."""
    result = json.loads(path.read_text())
    run = result["runs"][0]
    tag = path.stem.rsplit("ep-", 1)[-1] if "ep-" in path.stem else path.stem
    settings = (f"w {run.get('width', 1.0)}, {run['image_size']}/{run.get('stored_size', run['image_size'])} px, "
                f"b {run['batch_size']}, {run['epochs']} ep ({run['steps']} steps), "
                f"jitter {run.get('jitter_strength', 1.0)}, gray {run.get('grayscale_prob', 0.2)}, "
                f"{run['precision']}")
    r, t = run["random_init"], run["trained"]
    return (f"| {tag} | {settings} | {run['train_s'] / 60:.1f} / {run['wall_s'] / 60:.1f} | "
            f"{run.get('views_per_s_after_epoch_1') or run['views_per_s']} | "
            f"{r['linear_probe']:.3f} / {r['knn']:.3f} | {t['linear_probe']:.3f} / {t['knn']:.3f} | "
            f"{t['linear_probe'] - r['linear_probe']:+.3f} / {t['knn'] - r['knn']:+.3f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="benchmarks.quality JSON result files")
    args = parser.parse_args(argv)
    print("| run | settings | minutes (train / all) | views/s | random init linear / kNN | "
          "SimSiam linear / kNN | gain linear / kNN |")
    print("|---|---|---|---|---|---|---|")
    for path in args.files:
        print(row(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
