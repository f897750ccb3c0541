"""Degenerate data fails at ingestion with one line naming the numbers and the fix (issue 14, part 3).

Before, two classes of four images that all hash to train were ingested with an empty eval split, and the
run died in Transform with `KeyError: 'image'`. `check_splits` is pure Python (fast tests); one ExampleGen
run shows the executor applies it to the validated counts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from components.ingest.files import DataError
from components.ingest.ingestion_record import check_splits, predicted_counts
from components.ingest.splits import split_of
from tests.fakes.images import encode, make_image


def all_train_ids(classes: tuple[str, ...], per_class: int) -> list[tuple[str, str]]:
    """(image_id, class) pairs whose ids all hash to the train split at eval_percent 15."""
    ids = []
    for class_name in classes:
        names = (f"{class_name}/img_{i}.jpg" for i in range(10_000))
        ids += [(n, class_name) for n in names if split_of(n, 15) == "train"][:per_class]
    return ids


def test_empty_eval_split_names_the_numbers_and_the_fix() -> None:
    counts = predicted_counts(all_train_ids(("a", "b"), 4), 15)
    assert counts == {"train": {"a": 4, "b": 4}, "eval": {}}
    with pytest.raises(
        DataError,
        match=r"^the eval split of data folder D has no labelled image: all 8 labelled "
        r"images hash to train; add images or raise --eval-percent \(now 15\)$",
    ):
        check_splits(["a", "b"], counts, "data folder D", 15, min_train_examples=2)


def test_class_absent_from_eval_one_class_and_too_few_for_a_batch() -> None:
    counts = {"train": {"a": 5, "b": 3}, "eval": {"a": 2}}
    with pytest.raises(
        DataError,
        match=r"class\(es\) 'b' \(3 train images\) of D have no image in the eval split.*"
        r"add images to them or raise --eval-percent \(now 10\)",
    ):
        check_splits(["a", "b"], counts, "D", 10)
    with pytest.raises(DataError, match=r"D has 1 class folder\(s\) \('a'\): .* need at least two"):
        check_splits(["a"], {"train": {"a": 9}, "eval": {"a": 2}}, "D")
    counts = {"train": {"a": 5, "b": 3}, "eval": {"a": 2, "b": 1}}
    with pytest.raises(
        DataError,
        match=r"D has 8 training images, fewer than one training batch \(16\): add images "
        r"or choose a smaller --batch-size",
    ):
        check_splits(["a", "b"], counts, "D", 15, min_train_examples=16)
    check_splits(["a", "b"], counts, "D", 15, min_train_examples=8)  # exactly one batch: fine


def test_example_gen_of_a_training_run_refuses_an_empty_eval_split(tmp_path: Path) -> None:
    from components.ingest.component import image_example_gen
    from tests.fakes.images import run_executor

    root = tmp_path / "data"
    for i, (image_id, _) in enumerate(all_train_ids(("a", "b"), 4)):
        (root / image_id).parent.mkdir(parents=True, exist_ok=True)
        (root / image_id).write_bytes(encode(make_image((24, 16), seed=i), "JPEG"))
    with pytest.raises(
        DataError,
        match=r"the eval split of data folder .* has no labelled image: all 8 labelled "
        r"images hash to train",
    ):
        run_executor(image_example_gen(str(root), min_train_examples=4), tmp_path / "out")
    run_executor(image_example_gen(str(root)), tmp_path / "out2")  # ingestion alone (`ingest`) still works


def test_a_class_without_training_images_fails_naming_the_class() -> None:
    """Issue 28, item 7: a class with eval images only was ingested, trained and blessed, and the probe
    could never predict it (accuracy 0.0 on it); it now fails like a class without eval images."""
    counts = {"train": {"a": 5, "b": 4}, "eval": {"a": 2, "b": 1, "c": 2}}
    with pytest.raises(
        DataError,
        match=r"^class\(es\) 'c' \(2 eval images\) of D have no image in the train split, so the model "
        r"cannot learn them: add images to them or lower --eval-percent \(now 15\)$",
    ):
        check_splits(["a", "b", "c"], counts, "D", 15)


def test_example_gen_refuses_a_class_whose_images_all_hash_to_eval(tmp_path: Path) -> None:
    from components.ingest.component import image_example_gen
    from tests.fakes.images import run_executor

    root = tmp_path / "data"
    only_eval = [n for n in (f"c/img_{i}.jpg" for i in range(200)) if split_of(n, 15) == "eval"][:2]
    ids = [image_id for image_id, _ in all_train_ids(("a", "b"), 4)] + only_eval
    for class_name in "ab":
        ids += [n for n in (f"{class_name}/e_{i}.jpg" for i in range(200)) if split_of(n, 15) == "eval"][:2]
    for i, image_id in enumerate(ids):
        (root / image_id).parent.mkdir(parents=True, exist_ok=True)
        (root / image_id).write_bytes(encode(make_image((24, 16), seed=i), "JPEG"))
    with pytest.raises(
        DataError, match=r"class\(es\) 'c' \(2 eval images\) of data folder .* have no image in the train split"
    ):
        run_executor(image_example_gen(str(root), min_train_examples=4), tmp_path / "out")
