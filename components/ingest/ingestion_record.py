"""`<examples uri>/ingestion_report.json`: the class names, the per-split counts and the rejected files.

Shape: {"classes": [names in label order], "counts": {"train": {class: n}, "eval": {class: n}},
"unlabeled": {"train": n, "eval": n}, "rejected": [{"path": image id, "reason": text}],
"ignored": [{"path", "rule"}], "duplicates": {"groups": n, "images": n, "examples": [[image ids]]}}:
every file below the data folders (every record of TFRecord input) is counted, rejected or ignored by a
rule (components/ingest/files.py); an ignored folder's path ends with "/" and stands for the files below
it. "counts" holds the labelled images, "unlabeled" the others, by hash split; "duplicates" the groups
of byte-identical images (all copies kept, in one split; `examples`: the first groups). Pure Python;
remote URIs go through TFX's fileio.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from components import features as F
from components.ingest.files import RUN_RULE, DataError
from components.ingest.splits import SPLIT_NAMES, UNLABELED_PREFIX
from serving.atomic import write_text_atomic

DUPLICATE_EXAMPLES = 10  # groups of copies listed in the report


def _open(path: str, mode: str):
    if "://" in path:  # gs://, s3://, ...: TensorFlow's filesystems through TFX
        from tfx.dsl.io import fileio

        return fileio.open(path, mode)
    return open(path, mode, encoding="utf-8")


def report_path(examples_uri: str) -> str:
    return f"{str(examples_uri).rstrip('/')}/{F.INGESTION_REPORT_FILE}"


def build_report(
    classes: Iterable[str],
    split_class_counts: Iterable[tuple[tuple[str, str], int]],
    rejected: Iterable[dict[str, str]],
    ignored: Iterable[dict[str, str]] = (),
    duplicate_groups: Iterable[Iterable[str]] = (),
) -> dict[str, Any]:
    """`split_class_counts`: ((output split, class name), number of examples), unlabelled images under
    the "unlabeled_<split>" splits; classes with none get 0. `duplicate_groups`: lists of the ids of
    byte-identical images."""
    classes = list(classes)
    counts = {split: dict.fromkeys(classes, 0) for split in SPLIT_NAMES}
    unlabeled = dict.fromkeys(SPLIT_NAMES, 0)
    for (split, class_name), n in split_class_counts:
        if split.startswith(UNLABELED_PREFIX):
            unlabeled[split[len(UNLABELED_PREFIX) :]] = unlabeled.get(split[len(UNLABELED_PREFIX) :], 0) + n
        else:
            counts.setdefault(split, dict.fromkeys(classes, 0))[class_name] += n
    rejected = sorted(({"path": r["path"], "reason": r["reason"]} for r in rejected), key=lambda r: r["path"])
    ignored = sorted(({"path": r["path"], "rule": r["rule"]} for r in ignored), key=lambda r: r["path"])
    groups = sorted(sorted(g) for g in duplicate_groups)
    duplicates = {"groups": len(groups), "images": sum(len(g) for g in groups), "examples": groups[:DUPLICATE_EXAMPLES]}
    return {
        "classes": classes,
        "counts": counts,
        "unlabeled": unlabeled,
        "rejected": rejected,
        "ignored": ignored,
        "duplicates": duplicates,
    }


def unlabeled_counts(report: dict[str, Any]) -> dict[str, int]:
    """{split: unlabelled images}; {"train": 0, "eval": 0} for reports written before unlabelled input."""
    return {split: int(report.get("unlabeled", {}).get(split, 0)) for split in SPLIT_NAMES}


def write_report(path: str, report: dict[str, Any]) -> None:
    """Writes `report` as JSON; a local file whole or not at all (a failed write keeps the previous one)."""
    text = json.dumps(report, indent=1, ensure_ascii=False) + "\n"
    if "://" not in path:
        return write_text_atomic(path, text)
    with _open(path, "w") as f:
        f.write(text)


def read_report(examples_uri: str) -> dict[str, Any]:
    with _open(report_path(examples_uri), "r") as f:
        return json.load(f)


def load_class_names(examples_uri: str) -> list[str]:
    """Class names in label order (label i is `load_class_names(uri)[i]`)."""
    return list(read_report(examples_uri)["classes"])


def _examples(rejected: list[dict[str, str]], n: int = 3) -> str:
    shown = "; ".join(f"{r['path']}: {r['reason']}" for r in rejected[:n])
    return shown + (f"; and {len(rejected) - n} more" if len(rejected) > n else "")


def check_splits(
    classes: list[str],
    counts: dict[str, dict[str, int]],
    source: str,
    eval_percent: int | None = None,
    min_train_examples: int = 1,
    report: dict[str, Any] | None = None,
    unlabeled: dict[str, int] | None = None,
    labeled: bool = True,
) -> None:
    """Raises DataError, one line naming the numbers and the fix, when the splits cannot train and evaluate.

    `counts` is {split: {class: n}} of the labelled images, `unlabeled` {split: n} of the others (the
    report's, or `predicted_counts` from the listing before any decoding). SimSiam trains on both train
    splits: together they need `min_train_examples` images (one training batch: the Trainer drops
    incomplete batches). With labels (`labeled`), the probe and the Evaluator also need: at least two
    classes, labelled images in train and in eval, and every class in train (else the probe
    can never predict it: blessed with accuracy 0 on it) and in eval. Without labels, the
    label-free gate needs unlabelled eval images. Without these checks the run failed later in
    Transform with `KeyError: 'image'` (SchemaGen marks every feature of an empty split DEPRECATED)."""
    percent = f"--eval-percent (now {eval_percent})" if eval_percent else "--eval-percent"
    unlabeled = unlabeled or dict.fromkeys(SPLIT_NAMES, 0)
    train, evaluation = (counts.get(s, {}) for s in SPLIT_NAMES)
    n_train, n_eval = sum(train.values()), sum(evaluation.values())
    if labeled:
        if len(classes) < 2:
            raise DataError(
                f"{source} has {len(classes)} class folder(s) ({', '.join(map(repr, classes)) or 'none'}): "
                "classification and its evaluation need at least two; add a class folder",
                report,
            )
        if n_eval == 0 or n_train == 0:
            empty, full, n = ("eval", "train", n_train) if n_eval == 0 else ("train", "eval", n_eval)
            raise DataError(
                f"the {empty} split of {source} has no labelled image: all {n} labelled images hash to "
                f"{full}; add images or {'raise' if empty == 'eval' else 'lower'} {percent}",
                report,
            )
        # Every class needs images in both splits: train to learn it, eval to measure it.
        for split, split_counts, other, other_counts, why, fix in (
            ("train", train, "eval", evaluation, "the model cannot learn them", "lower"),
            ("eval", evaluation, "train", train, "their accuracy cannot be measured", "raise"),
        ):
            missing = [c for c in classes if split_counts.get(c, 0) == 0]
            if missing:
                detail = ", ".join(f"{c!r} ({other_counts.get(c, 0)} {other} images)" for c in missing[:5])
                raise DataError(
                    f"class(es) {detail} of {source} have no image in the {split} split, so {why}: "
                    f"add images to them or {fix} {percent}",
                    report,
                )
    elif unlabeled.get("eval", 0) == 0:
        raise DataError(
            f"the eval split of {source} is empty: all {unlabeled.get('train', 0)} images hash to train, "
            f"and the label-free gate measures the model on eval images; add images or raise {percent}",
            report,
        )
    n_all = n_train + unlabeled.get("train", 0)
    if n_all < min_train_examples:
        raise DataError(
            f"{source} has {n_all} training images, fewer than one training batch "
            f"({min_train_examples}): add images or choose a smaller --batch-size",
            report,
        )


def predicted_counts(files: Iterable[tuple[str, str | None]], eval_percent: int) -> dict[str, dict[str, int]]:
    """{split: {class: n}} of the labelled (image_id, class name) pairs, by `splits.split_of` (TFX's hash
    split); unlabelled pairs (class None) are counted by `predicted_unlabeled`. Copies of one image are
    not known before reading the bytes: they may move an image or two."""
    from components.ingest.splits import split_of

    counts: dict[str, dict[str, int]] = {split: {} for split in SPLIT_NAMES}
    for image_id, class_name in files:
        if class_name is not None:
            split = counts[split_of(image_id, eval_percent)]
            split[class_name] = split.get(class_name, 0) + 1
    return counts


def predicted_unlabeled(files: Iterable[tuple[str, str | None]], eval_percent: int) -> dict[str, int]:
    """{split: n} of the unlabelled (class None) images among (image_id, class name) pairs."""
    from components.ingest.splits import split_of

    counts = dict.fromkeys(SPLIT_NAMES, 0)
    for image_id, class_name in files:
        if class_name is None:
            counts[split_of(image_id, eval_percent)] += 1
    return counts


def check_report(
    report: dict[str, Any],
    max_rejected_fraction: float,
    source: str,
    eval_percent: int | None = None,
    min_train_examples: int = 0,
    labeled: bool = True,
) -> None:
    """Raises DataError (carrying the report) when a class has no valid image or too large a share of
    the files was rejected; `source` names the input in the message, which quotes a few rejections.
    Then, when `min_train_examples` > 0 (a run that trains on these examples), `check_splits`."""
    accepted = {c: sum(report["counts"][s].get(c, 0) for s in report["counts"]) for c in report["classes"]}
    rejected = report["rejected"]
    for class_name, n in accepted.items():
        if n == 0:
            bad = [r for r in rejected if r["path"].split("/", 1)[0] == class_name]
            detail = (
                f"all {len(bad)} of its files were rejected ({_examples(bad)})"
                if bad
                else f"all of its records were rejected (the report lists {len(rejected)} rejections by id)"
            )
            raise DataError(f"class {class_name!r} in {source} has no valid image: {detail}", report)
    total = sum(accepted.values()) + sum(unlabeled_counts(report).values()) + len(rejected)
    if total and len(rejected) / total > max_rejected_fraction:
        raise DataError(
            f"{len(rejected)} of {total} files ({len(rejected) / total:.1%}) in {source} were rejected, more "
            f"than the allowed {max_rejected_fraction:.1%} (max_rejected_fraction): {_examples(rejected)}",
            report,
        )
    if min_train_examples > 0:
        check_splits(
            report["classes"],
            report["counts"],
            source,
            eval_percent,
            min_train_examples,
            report,
            unlabeled_counts(report),
            labeled,
        )


def summary_table(report: dict[str, Any], max_rejected_listed: int = 10) -> str:
    """A short human summary: examples per class and split, then the first rejected files."""
    splits = list(report["counts"])
    width = max([len("(unlabelled)")] + [len(c) for c in report["classes"]]) + 2
    header = f"{'label':>5}  {'class':<{width}}" + "".join(f"{s:>8}" for s in splits) + f"{'total':>8}"
    lines = [header, "-" * len(header)]
    totals = dict.fromkeys(splits, 0)
    for label, name in enumerate(report["classes"]):
        row = [report["counts"][s].get(name, 0) for s in splits]
        for s, n in zip(splits, row):
            totals[s] += n
        lines.append(f"{label:>5}  {name:<{width}}" + "".join(f"{n:>8,}" for n in row) + f"{sum(row):>8,}")
    unlabeled = unlabeled_counts(report)
    if any(unlabeled.values()):
        row = [unlabeled.get(s, 0) for s in splits]
        for s, n in zip(splits, row):
            totals[s] += n
        lines.append(f"{'-':>5}  {'(unlabelled)':<{width}}" + "".join(f"{n:>8,}" for n in row) + f"{sum(row):>8,}")
    lines.append("-" * len(header))
    lines.append(
        f"{'':>5}  {'total':<{width}}" + "".join(f"{totals[s]:>8,}" for s in splits) + f"{sum(totals.values()):>8,}"
    )
    duplicates = report.get("duplicates") or {}
    if duplicates.get("groups"):
        lines.append(
            f"byte-identical copies: {duplicates['images']} images in {duplicates['groups']} groups, each "
            "group kept in one split (listed in the report)"
        )
        for group in duplicates["examples"][:3]:
            lines.append(f"  {' = '.join(group)}")
    rejected = report["rejected"]
    ignored = report.get("ignored") or []
    runs = [r["path"] for r in ignored if r["rule"] == RUN_RULE]
    if runs:  # said once: the folders of earlier runs inside the data are not read
        lines.append(
            f"not read: {len(runs)} folder(s) holding a simsiam-tfx run (metadata.sqlite and "
            f"pipeline_root/): {', '.join(runs[:3])}{' ...' if len(runs) > 3 else ''}"
        )
    if len(ignored) > len(runs):
        lines.append(f"ignored: {len(ignored) - len(runs)} (hidden, or not in a class folder; listed in the report)")
    lines.append(f"rejected files: {len(rejected)}")
    for r in rejected[:max_rejected_listed]:
        lines.append(f"  {r['path']}: {r['reason']}")
    if len(rejected) > max_rejected_listed:
        lines.append(f"  ... and {len(rejected) - max_rejected_listed} more (all in the report)")
    return "\n".join(lines)
