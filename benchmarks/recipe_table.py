"""The recipe-study tables of docs/quality.md from `benchmarks.quality` result files: one markdown row per run.

    python -m benchmarks.recipe_table benchmarks/results/quality-tensorflow-resnet18-*-s*.json

Columns: the run's tag and settings, its minutes (training, and the whole run with scoring), views/s,
linear-probe / kNN accuracy on the eval split for the random-init encoder, for the strongest cheap
baseline (models/baselines.py; absent in runs made before it existed), after SimSiam, and the gain
over the strongest of all baselines. Files of one tag (several seeds) are averaged, with the seeds
listed; a file written with several seeds contributes each of them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from models.baselines import strongest_baseline

METRICS = ("linear_probe", "knn")


def tag_of(path: Path) -> str:
    """The study tag of a result file: the part of its name after `<E>ep-`, without a `seed<N>` part."""
    tag = path.stem.rsplit("ep-", 1)[-1] if "ep-" in path.stem else path.stem
    return re.sub(r"(^|-)seed\d+(?=-|$)", "", tag).lstrip("-")


def settings(run: dict[str, Any]) -> str:
    text = (
        f"w {run.get('width', 1.0)}, {run['image_size']}/{run.get('stored_size', run['image_size'])} px"
        + (f" (eval {run['eval_size']})" if run.get("eval_size", run["image_size"]) != run["image_size"] else "")
        + ", "
        f"b {run['batch_size']}, {run['epochs']} ep ({run['steps']} steps), lr {run.get('base_lr', 0.06)}, "
        f"jitter {run.get('jitter_strength', 1.0)}, gray {run.get('grayscale_prob', 0.2)}"
    )
    if run.get("crop_min_scale", 0.2) != 0.2:
        text += f", crop >= {run['crop_min_scale']}"
    heads = (run.get("proj_hidden_dim", 2048), run.get("proj_dim", 2048), run.get("pred_hidden_dim", 512))
    if heads != (2048, 2048, 512):
        text += f", heads {run['proj_hidden_dim']}/{run['proj_dim']}/{run['pred_hidden_dim']}"
    return f"{text}, {run['precision']}"


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _pair(scores: list[dict[str, float]] | None) -> str:
    if not scores:
        return "-"
    return " / ".join(f"{_mean([s[m] for s in scores]):.3f}" for m in METRICS)


def row(tag: str, runs: list[dict[str, Any]]) -> str:
    """One markdown table row for the runs (seeds) of one study tag."""
    first = runs[0]
    cheap = [r.get("cheap_baselines") for r in runs]
    strongest_cheap = None
    if all(cheap):
        strongest_cheap = [{m: strongest_baseline(c, m)[1] for m in METRICS} for c in cheap]
    gains = []
    for r, c in zip(runs, cheap):
        baselines = {"random_init": r["random_init"], **(c or {})}
        gains.append({m: r["trained"][m] - strongest_baseline(baselines, m)[1] for m in METRICS})
    seeds = ",".join(str(r["seed"]) for r in runs)
    views = first.get("views_per_s_after_epoch_1") or first["views_per_s"]
    return (
        f"| {tag} | {settings(first)} | {seeds} | {_mean([r['train_s'] for r in runs]) / 60:.1f} / "
        f"{_mean([r['wall_s'] for r in runs]) / 60:.1f} | {views} | {_pair([r['random_init'] for r in runs])} | "
        f"{_pair(strongest_cheap)} | {_pair([r['trained'] for r in runs])} | "
        + " / ".join(f"{_mean([g[m] for g in gains]):+.3f}" for m in METRICS)
        + " |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="benchmarks.quality JSON result files")
    args = parser.parse_args(argv)
    by_tag: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in args.files:
        by_tag[tag_of(path)].extend(json.loads(path.read_text())["runs"])
    print(
        "| run | settings | seeds | minutes (train / all) | views/s | random init linear / kNN | "
        "strongest cheap baseline linear / kNN | SimSiam linear / kNN | gain over the strongest linear / kNN |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for tag, runs in by_tag.items():
        print(row(tag, runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
