"""A run on few photos is told up front that its held-out split is too small for the gate it will meet."""

from __future__ import annotations

from components.ingest.ingestion_record import predicted_counts
from components.ingest.inputs import SMALL_EVAL, ImageInput
from tests.fakes.images import make_image_folder


def test_few_labelled_eval_images_warn_with_the_standard_error(tmp_path) -> None:
    make_image_folder(tmp_path / "photos", {"a": 20, "b": 20}, size=(8, 8))
    image_input = ImageInput(data_dir=str(tmp_path / "photos"))
    n = sum(predicted_counts(image_input.listing().files, 15)["eval"].values())
    assert 0 < n < SMALL_EVAL
    warning = image_input.small_eval_warning(15)
    assert warning.startswith(f"only {n} labelled eval images: ")
    assert f"standard error of up to {50 / n**0.5:.0f} points" in warning and "than 15)" in warning


def test_few_unlabelled_held_out_images_warn_that_the_rank_is_capped(tmp_path) -> None:
    make_image_folder(tmp_path / "photos", {"2026-01": 30, "2026-02": 30}, size=(8, 8))
    warning = ImageInput(unlabeled_dir=str(tmp_path / "photos")).small_eval_warning(30)
    assert "held-out images for the label-free gate: their effective rank cannot exceed" in warning


def test_enough_eval_images_and_remote_inputs_say_nothing(tmp_path) -> None:
    make_image_folder(tmp_path / "photos", {"a": 400, "b": 400}, size=(8, 8))
    assert ImageInput(data_dir=str(tmp_path / "photos")).small_eval_warning(15) is None  # ~120 eval images
    assert ImageInput(examples="gs://bucket/train-*.tfrecord", label_key="label").small_eval_warning(15) is None
