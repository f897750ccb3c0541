"""Listing a folder of class folders and validating image bytes (components/ingest/files.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from components.ingest.files import (
    RUN_RULE,
    DataError,
    check_listing,
    folder_listing,
    list_image_folder,
    list_unlabeled_folder,
)
from components.ingest.ingestion_record import build_report, summary_table
from serving.images import ImageLimits, check_image_bytes
from tests.fakes.images import (
    bad_files,
    damaged_scan_jpeg,
    encode,
    make_image,
    make_image_folder,
    special_images,
)


def test_listing_sorts_classes_and_ids_keeps_nested_files_in_their_class(tmp_path: Path) -> None:
    make_image_folder(tmp_path, {"tulips": 2, "daisy": 1, "Roses": 1})
    nested = tmp_path / "daisy" / "more" / "deeper"
    nested.mkdir(parents=True)
    (nested / "x.PNG").write_bytes(encode(make_image(), "PNG"))
    (tmp_path / "daisy" / "y.JpEg").write_bytes(encode(make_image(), "JPEG"))
    (tmp_path / "daisy" / ".DS_Store").write_bytes(b"hidden")
    (tmp_path / ".hidden_class").mkdir()
    (tmp_path / ".hidden_class" / "z.jpg").write_bytes(encode(make_image(), "JPEG"))
    (tmp_path / "tulips" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "tulips" / ".ipynb_checkpoints" / "c.jpg").write_bytes(b"x")
    (tmp_path / "LICENSE.txt").write_text("top-level files are not images of a class")
    (tmp_path / "tulips" / "README.md").write_text("not an image")

    listing = list_image_folder(str(tmp_path))

    assert listing.classes == ("Roses", "daisy", "tulips")  # sorted by code point: upper case first
    assert listing.labels == {"Roses": 0, "daisy": 1, "tulips": 2}
    assert listing.files == (
        ("Roses/Roses_0.jpg", "Roses"),
        ("daisy/daisy_0.jpg", "daisy"),
        ("daisy/more/deeper/x.PNG", "daisy"),
        ("daisy/y.JpEg", "daisy"),
        ("tulips/tulips_0.jpg", "tulips"),
        ("tulips/tulips_1.jpg", "tulips"),
    )
    assert [(i, p.kind) for i, p in listing.rejected] == [("tulips/README.md", "unsupported_extension")]
    assert "'.md'" in listing.rejected[0][1].reason
    assert listing.files_per_class() == {"Roses": 1, "daisy": 3, "tulips": 2}


def test_listing_through_tfx_fileio_equals_os_walk(tmp_path: Path) -> None:
    """The executor lists gs:// folders with TFX's fileio.walk (TensorFlow's filesystems)."""
    from tfx.dsl.io import fileio

    make_image_folder(tmp_path, {"a": 2, "b": 1})
    (tmp_path / "a" / "sub").mkdir()
    (tmp_path / "a" / "sub" / "n.png").write_bytes(encode(make_image(), "PNG"))
    (tmp_path / "a" / ".hidden").mkdir()
    (tmp_path / "a" / ".hidden" / "h.jpg").write_bytes(b"x")
    (tmp_path / "b" / "x.txt").write_text("x")
    write_run_folder(tmp_path / "b" / "run")
    write_run_folder(tmp_path / "out")
    assert list_image_folder(str(tmp_path), walk=fileio.walk) == list_image_folder(str(tmp_path))


def write_run_folder(folder: Path) -> None:
    """What `simsiam-tfx run --output FOLDER` leaves: ML Metadata, the pipeline root and PNG plots."""
    (folder / "pipeline_root" / "RunReport" / "report" / "7").mkdir(parents=True)
    (folder / "pipeline_root" / "RunReport" / "report" / "7" / "sprite.png").write_bytes(encode(make_image(), "PNG"))
    (folder / "metadata.sqlite").write_bytes(b"SQLite format 3\0")
    (folder / "training_curves.png").write_bytes(encode(make_image(), "PNG"))
    (folder / "embedding_map.png").write_bytes(encode(make_image(), "PNG"))


def test_a_run_folder_inside_the_photos_is_never_read_as_photos_and_said_once(tmp_path: Path) -> None:
    """Issue 27: an --output inside the data folder became a class 'out' ('holds no .jpg'), or, without
    labels, its plots and projector sprite were ingested as photos by the next run."""
    make_image_folder(tmp_path, {"a": 2, "b": 1})
    write_run_folder(tmp_path / "out")  # a run's folder where a class folder would be
    write_run_folder(tmp_path / "a" / "old_run")  # and one inside a class folder
    listing = list_image_folder(str(tmp_path))
    check_listing(listing)
    assert listing.classes == ("a", "b")
    assert [i for i, _ in listing.files] == ["a/a_0.jpg", "a/a_1.jpg", "b/b_0.jpg"] and listing.rejected == ()
    assert [i for i in listing.ignored if i[1] == RUN_RULE] == [("a/old_run/", RUN_RULE), ("out/", RUN_RULE)]

    photos = tmp_path / "unlabelled"
    make_image_folder(photos, {"2024": 2})
    write_run_folder(photos / "2024" / "run")
    listing = list_unlabeled_folder(str(photos))
    assert [i for i, _ in listing.files] == ["2024/2024_0.jpg", "2024/2024_1.jpg"]
    assert listing.ignored == (("2024/run/", RUN_RULE),)

    report = build_report(["a", "b"], [], [], [{"path": p, "rule": r} for p, r in listing.ignored])
    table = summary_table(report)
    assert table.count("not read: 1 folder(s) holding a simsiam-tfx run") == 1 and "2024/run/" in table
    assert "ignored:" not in table  # the run folder is said once, not also among the hidden files


def test_pointing_at_a_run_folder_fails_clearly(tmp_path: Path) -> None:
    write_run_folder(tmp_path / "run")
    for data_dir, unlabeled_dir in ((tmp_path / "run", None), (None, tmp_path / "run")):
        with pytest.raises(DataError, match=f"{tmp_path / 'run'} holds a simsiam-tfx run .*not photos"):
            folder_listing(data_dir and str(data_dir), unlabeled_dir and str(unlabeled_dir))
    with pytest.raises(DataError, match="holds no class folders.*1 sub-folder\\(s\\), each holding a simsiam-tfx run"):
        list_image_folder(str(tmp_path))


def test_missing_folder_and_folder_without_classes_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"data folder {tmp_path}/nope does not exist"):
        list_image_folder(str(tmp_path / "nope"))
    (tmp_path / "a.jpg").write_bytes(encode(make_image()))
    with pytest.raises(DataError, match=f"data folder {tmp_path} holds no class folders.*found 1 files"):
        list_image_folder(str(tmp_path))


def test_class_without_any_image_file_fails(tmp_path: Path) -> None:
    make_image_folder(tmp_path, {"a": 1})
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="class folder\\(s\\) 'b' in .* hold no .jpg/.jpeg/.png file"):
        check_listing(list_image_folder(str(tmp_path)))


@pytest.mark.parametrize("name", sorted(special_images()))
def test_unusual_but_valid_images_pass_and_tensorflow_decodes_them(name: str) -> None:
    import tensorflow as tf

    from components.image_decode import decode_image

    data = special_images()[name]
    assert check_image_bytes(data) is None
    decoded = decode_image(tf.constant(data))  # the graphs' decode
    assert decoded.shape[-1] == 3 and decoded.dtype == tf.uint8


@pytest.mark.parametrize("name", [n for n in sorted(bad_files()) if not n.endswith(".txt")])
def test_bad_files_are_rejected_with_their_reason_and_tensorflow_agrees(name: str) -> None:
    import tensorflow as tf

    from components.image_decode import decode_image

    data, phrase = bad_files()[name]
    problem = check_image_bytes(data)
    assert problem is not None and phrase in problem.reason, problem
    # animation.png decodes (its first frame); damaged_scan.jpg decodes with grey blocks (libjpeg only
    # warns): both are refused by the check above, which ingestion and the serving client run.
    if name not in ("animation.png", "damaged_scan.jpg"):
        with pytest.raises(tf.errors.InvalidArgumentError):
            decode_image(tf.constant(data))  # the graphs' decode refuses it too (sizes: from the header)


def test_jpegs_with_damaged_scan_data_are_rejected_although_both_decoders_draw_them() -> None:
    """Issue 28, item 2: header and end marker intact, 20 scan bytes overwritten. TensorFlow and Pillow
    decode all three (with grey or smeared blocks); the check rejects all three, and their undamaged
    originals pass."""
    import tensorflow as tf

    from components.image_decode import decode_image

    for seed, mode, save_args in ((0, "RGB", {}), (1, "L", {}), (2, "RGB", {"progressive": True})):
        jpeg = encode(make_image((96, 64), mode=mode, seed=seed), "JPEG", **save_args)
        damaged = damaged_scan_jpeg(jpeg, seed=seed)
        assert damaged[:2] == b"\xff\xd8" and damaged.endswith(b"\xff\xd9") and len(damaged) == len(jpeg)
        assert check_image_bytes(jpeg) is None
        assert tuple(decode_image(tf.constant(damaged)).shape) == (64, 96, 3)  # no error from TensorFlow
        problem = check_image_bytes(damaged)
        assert problem is not None and problem.kind == "corrupt", (seed, problem)
        assert problem.reason.startswith("corrupt JPEG scan data: Corrupt JPEG data: "), problem.reason


def test_png_cut_after_its_image_data_is_rejected_although_pillow_decodes_it() -> None:
    png = encode(make_image((64, 48)), "PNG")
    for cut in range(1, 13):  # IEND is the last 12 bytes
        problem = check_image_bytes(png[:-cut])
        assert problem is not None and "truncated PNG" in problem.reason
    assert check_image_bytes(png + b"trailing bytes") is None


def test_jpeg_with_damaged_end_marker_is_rejected_although_pillow_decodes_it() -> None:
    import tensorflow as tf

    jpeg = encode(make_image((64, 48), mode="L"), "JPEG")
    assert jpeg.endswith(b"\xff\xd9")
    for damaged in (jpeg[:-2] + b"\xff\xd8", jpeg[:-1] + b"\x00", jpeg[:-2] + b"\x00\x00", jpeg[:-2]):
        problem = check_image_bytes(damaged)
        assert problem is not None and "truncated JPEG" in problem.reason
        with pytest.raises(tf.errors.InvalidArgumentError):
            tf.io.decode_image(damaged, channels=3, expand_animations=False)
    assert check_image_bytes(jpeg + b"camera trailer") is None


def test_dimension_limits_are_checked_from_the_header() -> None:
    limits = ImageLimits(min_side=8, max_side=100, max_pixels=5_000)
    assert check_image_bytes(encode(make_image((70, 70))), limits) is None  # 4,900 pixels
    assert "absurd dimensions 80x70" in check_image_bytes(encode(make_image((80, 70))), limits).reason
    assert "absurd dimensions 101x8" in check_image_bytes(encode(make_image((101, 8))), limits).reason
    assert "absurd dimensions 7x30" in check_image_bytes(encode(make_image((7, 30))), limits).reason


def test_module_needs_no_tensorflow() -> None:
    code = "import sys, components.ingest.files; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
