"""LabelFreeEvaluator: the gate for a model trained on unlabelled images, where no probe can be scored.

A Python-function TFX component. It embeds the stored images of the Transform output's eval split
(the `image_u8` feature, through `models.augment.eval_view`, exactly as the serving model does after
its Transform layer) with three encoders: the candidate (the SimSiam Trainer's model), the same
recipe at its random initialisation (rebuilt with the Trainer's seed, as components/report/data.py does)
and, when a Resolver found one, the last blessed model. It measures each with two label-free
numbers from models/evaluation.py:

- `effective_rank` (RankMe, Garrido et al., ICML 2023): tracks linear-probe accuracy without labels;
- `encoder_spread`: `embedding_collapse_std` (the SimSiam paper's collapse monitor, Sec. 4.1: the std
  over images of the l2-normalised vectors, averaged over the D dimensions, times sqrt(D)) applied to
  the *encoder's* output, the served embedding. Not the training curve's `collapse_std`, which is the
  same formula on the *projector's* output z: the encoder's output follows a ReLU, so its vectors all
  lie in the positive orthant and their spread sits far below 1 even for a healthy encoder (random
  init included); only 0 (every image the same direction) means collapse. Hence its own name.

It blesses (`label_free_decision`) only when the candidate has not collapsed (encoder_spread >= a
floor), is clearly richer than random init (RankMe >= ratio x the random-init RankMe), and does not
regress against the last blessed model (RankMe >= the baseline's, to the labelled gate's 1e-10).
The floor and ratio are RunConfig's (pipeline/configs.py), chosen with benchmarks/label_free.py on the
Flowers cpu run (docs/CONTRACTS.md).

Outputs: `evaluation` (ModelEvaluation) holds `label_free_metrics.json`; `blessing` (ModelBlessing)
is written as TFX's Evaluator writes it (components/evaluate/blessing.py).

No `from __future__ import annotations` here: TFX reads the component's type hints as objects.
"""

import json
import math
from typing import Any

import numpy as np
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts

from components import features as F
from components.evaluate.blessing import write_blessing
from components.examples import DEFAULT_SAMPLE_SIZE
from models.evaluation import effective_rank, embedding_collapse_std

# The thresholds are RunConfig's `min_encoder_spread` and `min_rank_ratio` (pipeline/configs.py), chosen
# from `python -m benchmarks.label_free` (its figures: benchmarks/results/label_free-*.json and
# docs/CONTRACTS.md, "Label-free gate"). Rank ratio 1.5: half again the random init's rank (1 by
# definition), with a wide margin under what the trained cpu and smoke models reach, and above collapsed
# encoders (below 1). The served features are post-ReLU, so random init and even a collapsing encoder keep
# a sizeable spread: the spread floor 0.1 only catches a total collapse (a constant encoder: 0) and lies
# under every non-degenerate encoder measured. Partial collapse and "no better than random" are the rank
# ratio's job.
BASELINE_TOLERANCE = 1e-10  # as the labelled gate's change threshold: any regression fails
# RankMe needs N >= D rows (512 for ResNet-18, 2048 for ResNet-50); more only costs time.
DEFAULT_MAX_EXAMPLES = DEFAULT_SAMPLE_SIZE


def read_stored_images(
    dataset_factory, file_patterns: list[str], max_examples: int = DEFAULT_MAX_EXAMPLES
) -> np.ndarray:
    """The stored images of transformed examples: uint8 `[N, T, T, 3]` (the `image_u8` feature,
    components/transform.py), the fixed hash sample of at most `max_examples` of them
    (components/examples.py), read through the TFXIO `dataset_factory`. Raises ValueError when
    `file_patterns` hold no example."""
    from components import examples

    _, images, _, _ = examples.sample_split(dataset_factory, file_patterns, max_examples)
    if not images:
        raise ValueError(f"no transformed example in {file_patterns}: nothing to measure the encoder on")
    return np.stack(images)


def random_init_encoder(simsiam_config: dict[str, Any], recipe: dict[str, Any]):
    """The candidate's encoder at the weights its Trainer started from: `keras.utils.set_random_seed(seed)`
    then `build_simsiam(config, mean, std)`, the SimSiam Trainer's order (the RunReport uses it too);
    for the evaluation view (`eval_size`), as the candidate is loaded."""
    import keras

    from models.config import SimSiamConfig
    from models.encoder import encoder_at_size
    from models.simsiam import build_simsiam

    config = SimSiamConfig.from_dict(simsiam_config)
    keras.utils.set_random_seed(config.seed)
    return encoder_at_size(build_simsiam(config, mean=recipe["mean"], std=recipe["std"]).encoder, config.eval_size)


def measure(embeddings: np.ndarray) -> dict[str, Any]:
    """{"effective_rank", "encoder_spread", "examples", "dimension", "finite"} of float `[N, D]` embeddings;
    both measures are None when a row holds NaN or inf (a diverged encoder is not blessed, not a crash)."""
    finite = bool(np.all(np.isfinite(embeddings)))
    return {
        "effective_rank": effective_rank(embeddings) if finite else None,
        "encoder_spread": embedding_collapse_std(embeddings) if finite else None,
        "examples": int(embeddings.shape[0]),
        "dimension": int(embeddings.shape[1]),
        "finite": finite,
    }


def label_free_decision(
    candidate: dict[str, Any],
    random_init: dict[str, Any],
    baseline: dict[str, Any] | None,
    thresholds: dict[str, float],
) -> tuple[bool, list[str]]:
    """(blessed, reasons): bless only if every condition holds; one reason per failed condition.

    `candidate`, `random_init`, `baseline` (None: no blessed model yet): `measure` dicts (keys
    `effective_rank`, `encoder_spread`, `finite`). `thresholds`: `min_encoder_spread` (the candidate's
    encoder_spread must reach it), `min_rank_ratio` (its RankMe must reach this multiple of the
    random-init RankMe) and optional `baseline_tolerance` (its RankMe may fall at most this far below
    the baseline's; default BASELINE_TOLERANCE). Pure: no I/O.
    """
    if not candidate.get("finite", True) or candidate.get("effective_rank") is None:
        return False, ["the candidate's embeddings hold NaN or inf: the encoder diverged"]
    reasons = []
    spread, rank = candidate["encoder_spread"], candidate["effective_rank"]
    floor = thresholds["min_encoder_spread"]
    if not spread >= floor:
        reasons.append(
            f"encoder_spread {spread:.4f} (the served embeddings' spread, 0 = all one direction) is below the "
            f"floor {floor:g}: the encoder has collapsed (SimSiam paper, Sec. 4.1)"
        )
    ratio = thresholds["min_rank_ratio"]
    random_rank = random_init.get("effective_rank")
    if random_rank is None:
        reasons.append("the random-init encoder's embeddings hold NaN or inf: there is no reference to beat")
    elif not rank >= ratio * random_rank:
        n, d = candidate.get("examples"), candidate.get("dimension")
        capped = (
            f"; note RankMe is at most min(N, D) and only N={n} eval images (D={d}) were measured: add images, "
            "raise --eval-percent or lower --min-rank-ratio"
            if n and d and n < d
            else ""
        )
        reasons.append(
            f"effective_rank {rank:.2f} is below {ratio:g} x the random-init encoder's {random_rank:.2f} "
            f"(= {ratio * random_rank:.2f}): training did not clearly enrich the representation{capped}"
        )
    if baseline is not None and baseline.get("effective_rank") is not None:
        tolerance = thresholds.get("baseline_tolerance", BASELINE_TOLERANCE)
        if not rank >= baseline["effective_rank"] - tolerance:
            reasons.append(
                f"effective_rank {rank:.4f} is below the last blessed model's "
                f"{baseline['effective_rank']:.4f}: a regression"
            )
    return not reasons, reasons


def _encoder_dir(model_uri: str) -> str:
    from tfx.utils import path_utils

    return path_utils.serving_model_path(model_uri)


def evaluate_label_free(
    model_dir: str,
    dataset_factory,
    file_patterns: list[str],
    simsiam_config: dict[str, Any],
    thresholds: dict[str, float],
    baseline_dir: str | None = None,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
) -> dict[str, Any]:
    """The gate's whole report: measures of candidate, random init and baseline on the stored images
    of `file_patterns` (read through the TFXIO `dataset_factory`), the thresholds, `blessed` and
    `reasons`. `model_dir`/`baseline_dir`: folders with encoder.weights.h5 + encoder.json
    (components/train/encoder_io.py). The baseline's encoder sees the same stored images through its
    own `eval_view` size."""
    from components.train.encoder_io import load_encoder
    from models.monitors import embed

    images = read_stored_images(dataset_factory, file_patterns, max_examples)
    encoder, recipe = load_encoder(model_dir)
    candidate = measure(embed(encoder, images))
    random_init = measure(embed(random_init_encoder(simsiam_config, recipe), images))
    baseline = None
    if baseline_dir:
        baseline = measure(embed(load_encoder(baseline_dir)[0], images))
    thresholds = {"baseline_tolerance": BASELINE_TOLERANCE, **thresholds}
    blessed, reasons = label_free_decision(candidate, random_init, baseline, thresholds)
    random_rank = random_init["effective_rank"]
    rank_ratio = (
        candidate["effective_rank"] / random_rank if candidate["effective_rank"] is not None and random_rank else None
    )
    return {
        "candidate": candidate,
        "random_init": random_init,
        "baseline": baseline,
        "rank_ratio": rank_ratio,
        "thresholds": thresholds,
        "blessed": blessed,
        "reasons": reasons,
        "model": model_dir,
        "baseline_model": baseline_dir,
        "examples_read": int(len(images)),
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


@component
def LabelFreeEvaluator(  # noqa: N802 - TFX component names are class-like
    examples: InputArtifact[standard_artifacts.Examples],
    model: InputArtifact[standard_artifacts.Model],
    evaluation: OutputArtifact[standard_artifacts.ModelEvaluation],
    blessing: OutputArtifact[standard_artifacts.ModelBlessing],
    simsiam_config: Parameter[str],
    min_encoder_spread: Parameter[float],
    min_rank_ratio: Parameter[float],
    splits: Parameter[str],
    baseline_model: InputArtifact[standard_artifacts.Model] = None,
    max_examples: Parameter[int] = DEFAULT_MAX_EXAMPLES,
) -> None:
    """Measures the candidate `model` on the transformed `examples` of `splits` (comma-separated) and
    blesses it or not (see the module docstring). `simsiam_config`: the SimSiamConfig as JSON (its seed
    rebuilds the random-init encoder); `min_encoder_spread`, `min_rank_ratio`: the thresholds, which the
    pipeline passes from its RunConfig; `baseline_model`: the last blessed SimSiam model, if any."""
    available = artifact_utils.decode_split_names(examples.split_names)
    wanted = [s.strip() for s in splits.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(available))
    if not wanted or unknown:
        raise ValueError(f"splits {splits!r}: {unknown or 'none given'} not in the examples (they have {available})")
    from components import examples as example_reader

    file_patterns = [p for s in wanted for p in example_reader.split_files(examples, s)]
    thresholds = {"min_encoder_spread": float(min_encoder_spread), "min_rank_ratio": float(min_rank_ratio)}
    report = evaluate_label_free(
        _encoder_dir(model.uri),
        example_reader.artifact_reader(examples),
        file_patterns,
        json.loads(simsiam_config),
        thresholds,
        _encoder_dir(baseline_model.uri) if baseline_model is not None else None,
        max_examples,
    )
    report["splits"] = wanted
    fileio.makedirs(evaluation.uri)
    with fileio.open(f"{evaluation.uri.rstrip('/')}/{F.LABEL_FREE_METRICS_FILE}", "w") as f:
        json.dump(report, f, indent=1)

    write_blessing(blessing, model, bool(report["blessed"]), baseline_model)

    for who in ("candidate", "random_init", "baseline"):
        m = report[who]
        if m is not None:
            print(
                f"[LabelFreeEvaluator] {who}: effective_rank {_fmt(m['effective_rank'])}, "
                f"encoder_spread {_fmt(m['encoder_spread'])} ({m['examples']} x {m['dimension']})",
                flush=True,
            )
    print(
        f"[LabelFreeEvaluator] rank ratio {_fmt(report['rank_ratio'])} (min {min_rank_ratio:g}), encoder_spread floor "
        f"{min_encoder_spread:g}: {'BLESSED' if report['blessed'] else 'NOT BLESSED'}"
        + "".join(f"\n  - {r}" for r in report["reasons"]),
        flush=True,
    )
