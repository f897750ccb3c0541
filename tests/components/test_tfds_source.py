"""The TFDS source: tf_flowers prepared locally by TFDS's own builder gives the folder source's examples."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest

from components.ingest.component import image_example_gen, tfds_image_example_gen
from components.ingest.files import DataError
from components.ingest.ingestion_record import read_report
from components.ingest.splits import split_of
from components.ingest.tfds import image_id_for, iter_tfds_images, prepare_tfds
from tests.fakes.images import (
    bad_files,
    make_image_folder,
    prepare_local_tf_flowers,
    read_split,
    run_executor,
    special_images,
)

FLOWER_COUNTS = {"daisy": 3, "dandelion": 2, "roses": 4, "sunflowers": 2, "tulips": 3}


@pytest.fixture(scope="module")
def flowers(tmp_path_factory) -> tuple[Path, Path]:
    """A folder of the five flower classes (with CMYK and grayscale JPEGs and one truncated JPEG) and
    the same images as a TFDS tf_flowers dataset."""
    tmp = tmp_path_factory.mktemp("tfds")
    folder = tmp / "flower_photos"
    make_image_folder(folder, FLOWER_COUNTS)
    (folder / "roses" / "cmyk.jpg").write_bytes(special_images()["cmyk.jpg"])
    (folder / "tulips" / "gray.jpg").write_bytes(special_images()["grayscale.jpg"])
    (folder / "daisy" / "truncated.jpg").write_bytes(bad_files()["truncated.jpg"][0])
    prepare_local_tf_flowers(folder, tmp / "tfds")
    return folder, tmp / "tfds"


def test_records_are_the_original_bytes_with_class_names_and_content_ids(flowers) -> None:
    folder, data_dir = flowers
    dataset = prepare_tfds("tf_flowers", str(data_dir))  # already prepared: no download
    assert dataset.label_names == ("dandelion", "daisy", "tulips", "sunflowers", "roses")  # TFDS' order
    assert dataset.classes == ("daisy", "dandelion", "roses", "sunflowers", "tulips")
    records = list(iter_tfds_images("tf_flowers", str(data_dir)))
    files = Counter((p.parent.name, p.read_bytes()) for p in folder.glob("*/*.jpg"))
    assert Counter((class_name, data) for _, class_name, data in records) == files
    for image_id, class_name, data in records:
        assert image_id == f"{class_name}/{hashlib.sha256(data).hexdigest()[:16]}.jpg" == image_id_for(class_name, data)


def test_tfds_example_gen_makes_the_same_examples_as_the_folder(flowers, tmp_path: Path) -> None:
    folder, data_dir = flowers
    from_tfds = run_executor(
        tfds_image_example_gen("tf_flowers", str(data_dir), max_rejected_fraction=0.2), tmp_path / "tfds"
    )
    from_folder = run_executor(image_example_gen(str(folder), max_rejected_fraction=0.2), tmp_path / "folder")

    def rows(uri: str) -> list[dict]:
        return [dict(r, split=s) for s in ("train", "eval") for r in read_split(uri, s)]

    tfds_rows, folder_rows = rows(from_tfds.uri), rows(from_folder.uri)
    key = lambda r: (r["class_name"], r["label"], r["image"])  # noqa: E731
    assert sorted(map(key, tfds_rows)) == sorted(map(key, folder_rows))
    assert len(tfds_rows) == sum(FLOWER_COUNTS.values()) + 2  # + CMYK + grayscale; the truncated one is out
    assert {r["label"] for r in tfds_rows if r["class_name"] == "daisy"} == {0}  # sorted order, not TFDS'
    assert all(split_of(r["image_id"]) == r["split"] for r in tfds_rows)

    tfds_report, folder_report = read_report(from_tfds.uri), read_report(from_folder.uri)
    assert tfds_report["classes"] == folder_report["classes"] == sorted(FLOWER_COUNTS)
    totals = lambda rep: {c: rep["counts"]["train"][c] + rep["counts"]["eval"][c] for c in rep["classes"]}  # noqa: E731
    assert totals(tfds_report) == totals(folder_report) == {**FLOWER_COUNTS, "roses": 5, "tulips": 4}
    [rejected] = tfds_report["rejected"]
    assert rejected["path"].startswith("daisy/") and "truncated" in rejected["reason"]


def test_unknown_dataset_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown TFDS dataset 'no_such_flowers_xyz'"):
        prepare_tfds("no_such_flowers_xyz", str(tmp_path))
