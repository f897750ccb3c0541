"""Bring your own images: unlabelled folders (flat and nested), labelled + unlabelled together, TFRecord
input with its own keys, and byte-identical copies; the ImageExampleGen executor on generated images
and real Flowers photos."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import tensorflow as tf

from components.ingest.component import image_example_gen, records_image_example_gen
from components.ingest.files import DataError, list_unlabeled_folder
from components.ingest.ingestion_record import check_report, read_report, summary_table
from components.ingest.inputs import ImageInput
from components.ingest.sources import parse_image_record, split_glob
from components.ingest.splits import canonical_ids, output_splits, split_of
from tests.fakes.images import FLOWERS, encode, make_image, read_split, run_executor

SUNFLOWER_COPIES = ("sunflowers/14889392928_9742aed45b_m.jpg", "sunflowers/15066430311_fb57fa92b0_m.jpg")


def _write_images(root: Path, rel_paths: list[str], seed: int = 0) -> None:
    for i, rel in enumerate(rel_paths):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(encode(make_image((40, 30), seed=seed + i)))


def _all_rows(uri: str, splits: list[str]) -> dict[str, list[dict]]:
    return {split: read_split(uri, split) for split in splits}


def test_a_flat_unlabelled_folder_becomes_unlabelled_train_and_eval(tmp_path: Path) -> None:
    ids = [f"img_{i:02d}.jpg" for i in range(30)]
    _write_images(tmp_path / "photos", ids)
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    examples = run_executor(
        image_example_gen(unlabeled_dir=str(tmp_path / "photos"), max_rejected_fraction=0.5), tmp_path / "out"
    )
    rows = _all_rows(examples.uri, ["unlabeled_train", "unlabeled_eval"])
    assert {r["image_id"] for r in rows["unlabeled_eval"]} == {i for i in ids if split_of(i) == "eval"}
    assert sum(len(r) for r in rows.values()) == 30
    assert all(r["label"] == -1 and r["class_name"] == "" for split in rows.values() for r in split)
    report = read_report(examples.uri)
    n_eval = sum(split_of(i) == "eval" for i in ids)
    assert report["unlabeled"] == {"train": 30 - n_eval, "eval": n_eval}
    assert report["classes"] == [] and report["counts"] == {"train": {}, "eval": {}}
    assert [r["path"] for r in report["rejected"]] == ["notes.txt"]
    assert not Path(examples.uri, "Split-train").exists()  # no labelled split without labels
    assert "(unlabelled)" in summary_table(report)


def test_nested_unlabelled_folders_are_folders_not_classes(tmp_path: Path) -> None:
    ids = ["2024/01/a.jpg", "2024/01/b.jpg", "2024/02/c.jpg", "cam2/d.jpg", "e.jpg"]
    _write_images(tmp_path / "photos", ids)
    (tmp_path / "photos" / "2024" / ".thumbs").mkdir()
    listing = list_unlabeled_folder(str(tmp_path / "photos"))
    assert listing.classes == () and listing.files == tuple((i, None) for i in sorted(ids))
    assert listing.ignored == (("2024/.thumbs/", "hidden (the name starts with a dot)"),)
    assert listing.unlabeled == 5
    with pytest.raises(DataError, match="holds no .jpg/.jpeg/.png file"):
        list_unlabeled_folder(str(tmp_path / "photos" / "2024" / ".thumbs"))


def test_labelled_and_unlabelled_folders_together(tmp_path: Path) -> None:
    labelled = [f"{c}/{c}_{i}.jpg" for c in ("a", "b") for i in range(12)]
    unlabelled = [f"extra/u_{i}.jpg" for i in range(20)]
    _write_images(tmp_path / "classes", labelled)
    _write_images(tmp_path / "more", unlabelled, seed=100)
    component = image_example_gen(str(tmp_path / "classes"), str(tmp_path / "more"))
    examples = run_executor(component, tmp_path / "out")
    splits = output_splits(True, True)
    assert splits == ["train", "eval", "unlabeled_train", "unlabeled_eval"]
    rows = _all_rows(examples.uri, splits)
    assert {r["image_id"] for s in ("train", "eval") for r in rows[s]} == set(labelled)
    assert {r["image_id"] for s in splits[2:] for r in rows[s]} == set(unlabelled)
    assert {(r["class_name"], r["label"]) for s in ("train", "eval") for r in rows[s]} == {("a", 0), ("b", 1)}
    assert all(r["label"] == -1 for s in splits[2:] for r in rows[s])
    report = read_report(examples.uri)
    assert sum(report["unlabeled"].values()) == 20 and sum(sum(c.values()) for c in report["counts"].values()) == 24
    assert report["unlabeled"]["eval"] == sum(split_of(i) == "eval" for i in unlabelled)
    # ids name one file: a path in both folders is refused before anything is read
    _write_images(tmp_path / "more", ["a/a_0.jpg"])
    with pytest.raises(DataError, match="appear both under the labelled folder"):
        ImageInput(str(tmp_path / "classes"), str(tmp_path / "more")).listing()
    with pytest.raises(ValueError, match="one inside the other"):
        ImageInput(str(tmp_path / "classes"), str(tmp_path / "classes" / "a"))


def test_an_unlabelled_run_needs_eval_images_and_a_batch(tmp_path: Path) -> None:
    ids = [f"x_{i}.jpg" for i in range(40)]
    only_train = [i for i in ids if split_of(i) == "train"][:6]
    report = {"classes": [], "counts": {"train": {}, "eval": {}}, "unlabeled": {"train": 6, "eval": 0}, "rejected": []}
    with pytest.raises(
        DataError, match="the eval split of D is empty: all 6 images hash to train, and the label-free gate"
    ):
        check_report(report, 0.1, "D", 15, min_train_examples=4, labeled=False)
    report["unlabeled"]["eval"] = 2
    with pytest.raises(DataError, match="D has 6 training images, fewer than one training batch"):
        check_report(report, 0.1, "D", 15, min_train_examples=8, labeled=False)
    check_report(report, 0.1, "D", 15, min_train_examples=6, labeled=False)
    _write_images(tmp_path / "few", only_train)  # the CLI's check, from the listing alone
    problem = ImageInput(unlabeled_dir=str(tmp_path / "few")).split_problem(15, 4)
    assert problem.startswith("the eval split of unlabelled image folder") and "hash to train" in problem


def _example(features: dict) -> bytes:
    def feature(value):
        if isinstance(value, int):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    return tf.train.Example(
        features=tf.train.Features(feature={k: feature(v) for k, v in features.items()})
    ).SerializeToString()


def test_tfrecords_with_custom_keys_report_bad_records_by_index(tmp_path: Path) -> None:
    folder = tmp_path / "records"
    folder.mkdir()
    images = [encode(make_image((40, 30), seed=i)) for i in range(24)]
    with tf.io.TFRecordWriter(str(folder / "part-0.tfrecord.gz"), options="GZIP") as writer:
        for i in range(12):
            writer.write(_example({"img/encoded": images[i], "cls": i % 2}))
        writer.write(b"\xff\xff\xff\xff not a tf.Example")  # record 12: a corrupt record
        writer.write(_example({"img/encoded": b"\xff\xd8\xff\xe0 not really a JPEG", "cls": 0}))  # 13
    with tf.io.TFRecordWriter(str(folder / "part-1.tfrecord")) as writer:  # uncompressed
        for i in range(12, 24):
            writer.write(_example({"img/encoded": images[i], "cls": i % 2}))
        writer.write(_example({"other": images[0]}))  # 12: no image feature
    component = records_image_example_gen(
        str(folder / "part-*"), image_key="img/encoded", label_key="cls", max_rejected_fraction=0.2
    )
    examples = run_executor(component, tmp_path / "out")
    report = read_report(examples.uri)
    reasons = {r["path"]: r["reason"] for r in report["rejected"]}
    assert sorted(reasons) == ["part-0.tfrecord.gz:12", "part-0.tfrecord.gz:13", "part-1.tfrecord:12"]
    assert reasons["part-0.tfrecord.gz:12"].startswith("not a tf.Example")
    assert "no bytes feature 'img/encoded' (--image-key); the record's features: other" in reasons["part-1.tfrecord:12"]
    assert report["classes"] == ["0", "1"]
    rows = _all_rows(examples.uri, ["train", "eval"])
    ids = {r["image_id"]: r for split in rows.values() for r in split}
    assert len(ids) == 24 and ids["part-1.tfrecord:3"]["label"] == (12 + 3) % 2
    assert all(ids[i]["image"] == images[int(i.split(":")[1]) + (12 if "part-1" in i else 0)] for i in ids)
    assert {r["image_id"] for r in rows["eval"]} == {i for i in ids if split_of(i) == "eval"}


def test_a_record_with_a_broken_checksum_ends_its_file_but_not_the_run(tmp_path: Path) -> None:
    folder = tmp_path / "records"
    folder.mkdir()
    images = [encode(make_image((40, 30), seed=i)) for i in range(20)]
    for name, part in (("good.tfrecord", images[:10]), ("bad.tfrecord", images[10:])):
        with tf.io.TFRecordWriter(str(folder / name)) as writer:
            for data in part:
                writer.write(_example({"image": data}))
    raw = bytearray((folder / "bad.tfrecord").read_bytes())
    record_size = 8 + 4 + len(_example({"image": images[10]})) + 4  # length, its CRC, payload, payload CRC
    raw[record_size * 3 + 20] ^= 0xFF  # a payload byte of record 3
    (folder / "bad.tfrecord").write_bytes(bytes(raw))
    examples = run_executor(
        records_image_example_gen(str(folder / "*.tfrecord"), max_rejected_fraction=0.2), tmp_path / "out"
    )
    report = read_report(examples.uri)
    assert [r["path"] for r in report["rejected"]] == ["bad.tfrecord:3"]
    assert "corrupt from record 3 on" in report["rejected"][0]["reason"]
    assert sum(report["unlabeled"].values()) == 13  # 10 + records 0-2 of the broken file


def test_parse_image_record_and_split_glob() -> None:
    record = parse_image_record("f:0", _example({"image": b"x", "label": b"cat"}), "image", "label")
    assert (record.class_name, record.data, record.problem) == ("cat", b"x", None)
    assert parse_image_record("f:1", _example({"image": b"x"}), "image", "label").problem.kind == "no_label"
    assert parse_image_record("f:2", _example({"image": b"x", "label": 7}), "image", None).class_name is None
    for no_class in (-1, b""):  # this project's own marks of "unlabelled" cannot be a class
        problem = parse_image_record("f:3", _example({"image": b"x", "label": no_class}), "image", "label").problem
        assert problem.kind == "no_label" and "marks no class" in problem.reason
    assert split_glob("/data/tfr/train-*.gz") == ("/data/tfr", "train-*.gz")
    assert split_glob("gs://b/x/*/part-*") == ("gs://b/x", "*/part-*")
    assert split_glob("part-*") == (".", "part-*")


def _example_of_lists(features: dict[str, list]) -> bytes:
    def feature(values):
        if isinstance(values[0], int):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))

    return tf.train.Example(
        features=tf.train.Features(feature={k: feature(v) for k, v in features.items()})
    ).SerializeToString()


def test_a_record_with_several_images_or_labels_is_rejected() -> None:
    """Issue 28, item 4: a feature holding two images or two labels was ingested with its first value and
    no word; which value the user meant is unknowable, so the record is rejected with the counts."""
    two_images = parse_image_record(
        "f:0", _example_of_lists({"image": [b"x", b"y"], "label": [b"cat"]}), "image", "label"
    )
    assert two_images.data is None and two_images.problem.kind == "several_values"
    assert two_images.problem.reason == (
        "feature 'image' (--image-key) holds 2 values, not one image: which one is meant is unknown"
    )
    unlabelled = parse_image_record("f:1", _example_of_lists({"image": [b"x", b"y"]}), "image", None)
    assert unlabelled.data is None and unlabelled.problem.kind == "several_values"
    for labels in ([1, 2], [b"cat", b"dog", b"cat"]):
        record = parse_image_record("f:2", _example_of_lists({"image": [b"x"], "label": labels}), "image", "label")
        assert record.class_name is None and record.problem.kind == "several_values"
        assert record.problem.reason == (
            f"feature 'label' (--label-key) holds {len(labels)} values, not one label: which one is meant is unknown"
        )
    one_each = parse_image_record("f:3", _example_of_lists({"image": [b"x"], "label": [3]}), "image", "label")
    assert (one_each.class_name, one_each.data, one_each.problem) == ("3", b"x", None)


def test_canonical_ids_send_every_copy_to_the_split_of_the_smallest_id() -> None:
    assert canonical_ids([["b", "a", "c"], ["z"]]) == {"a": "a", "b": "a", "c": "a"}


def test_class_vocabulary_keeps_the_numeric_order_of_int_labels() -> None:
    from components.ingest.executor import class_vocabulary

    assert class_vocabulary(["10", "2", "0", "2"]) == ("0", "2", "10")
    assert class_vocabulary(["b", "a", "10"]) == ("10", "a", "b")
    assert class_vocabulary(["\u00b2", "1"]) == ("1", "\u00b2")  # a superscript two is a digit, not a number


@pytest.mark.skipif(not FLOWERS.is_dir(), reason="needs ../shared/flowers")
def test_copies_are_reported_and_kept_in_one_split(tmp_path: Path) -> None:
    """The real Flowers pair of byte-identical sunflowers, plus one copy of a generated image across
    classes and one into the unlabelled folder; ids chosen so that each group's own ids hash to both
    splits (at 50% eval), so a split by id alone would put copies in train and in eval."""
    root, extra = tmp_path / "classes", tmp_path / "extra"
    for rel in SUNFLOWER_COPIES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FLOWERS / rel, root / rel)
    assert {split_of(i, 50) for i in SUNFLOWER_COPIES} == {"train", "eval"}
    names = [f"p{i}.jpg" for i in range(40)]
    a_id = next(f"a/{n}" for n in names if split_of(f"a/{n}", 50) == "eval")
    b_id = next(f"b/{n}" for n in names if split_of(f"b/{n}", 50) == "train")
    u_id = next(n for n in names if split_of(n, 50) == "train")
    data = encode(make_image((40, 30), seed=7))
    for folder, rel in ((root, a_id), (root, b_id), (extra, u_id)):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    _write_images(root, [f"{c}/g{i}.jpg" for c in ("a", "b", "sunflowers") for i in range(8)], seed=50)
    examples = run_executor(image_example_gen(str(root), str(extra), eval_percent=50), tmp_path / "out")
    report = read_report(examples.uri)
    assert report["duplicates"] == {
        "groups": 2,
        "images": 5,
        "examples": [sorted([a_id, b_id, u_id]), sorted(SUNFLOWER_COPIES)],
    }
    where = {r["image_id"]: split for split in output_splits(True, True) for r in read_split(examples.uri, split)}
    assert where[SUNFLOWER_COPIES[0]] == where[SUNFLOWER_COPIES[1]] == split_of(min(SUNFLOWER_COPIES), 50)
    hash_split = split_of(min([a_id, b_id, u_id]), 50)
    assert (where[a_id], where[b_id], where[u_id]) == (hash_split, hash_split, f"unlabeled_{hash_split}")
    assert "byte-identical copies: 5 images in 2 groups" in summary_table(report)
