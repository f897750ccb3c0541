"""Every file of a data folder is ingested, ignored by a documented rule or rejected with a reason, and the
ExampleGen's cache key notices a change to any of them (issue 14, part 2).

Reference: `find -L DIR -type f`, what a user who points the product at DIR expects to be looked at.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from components.ingest.driver import ImageFolderDriver, folder_fingerprint
from components.ingest.files import escape_name, list_image_folder
from tests.fakes.images import encode, make_image, make_image_folder

LATIN1_NAME = b"caf\xe9_photo.jpg"  # not UTF-8: a Latin-1 name from an old Windows archive


def messy_tree(root: Path) -> Path:
    """Nesting, links (to a file, to a folder, back to an ancestor, broken), hidden and odd names."""
    make_image_folder(root, {"roses": 3, "tulips": 3}, size=(24, 16))
    jpeg = encode(make_image((24, 16), seed=99), "JPEG")
    (root / "roses" / "from_camera" / "deeper").mkdir(parents=True)
    (root / "roses" / "from_camera" / "cam0.jpg").write_bytes(jpeg)
    (root / "roses" / "from_camera" / "deeper" / "cam1.png").write_bytes(encode(make_image((24, 16)), "PNG"))
    with open(os.path.join(os.fsencode(root / "roses"), LATIN1_NAME), "wb") as f:
        f.write(encode(make_image((24, 16), seed=5), "JPEG"))
    os.mkdir(os.path.join(os.fsencode(root), b"\xe9t\xe9"))  # a class folder named in Latin-1 too
    with open(os.path.join(os.fsencode(root), b"\xe9t\xe9", b"sun.jpg"), "wb") as f:
        f.write(encode(make_image((24, 16), seed=6), "JPEG"))
    (root / "tulips" / "notes.txt").write_text("not an image")
    (root / "tulips" / ".DS_Store").write_bytes(b"junk")
    (root / "tulips" / ".thumbs").mkdir()
    (root / "tulips" / ".thumbs" / "t.jpg").write_bytes(jpeg)
    (root / "LICENSE.txt").write_text("top-level file")
    outside = root.parent / "outside"
    outside.mkdir()
    (outside / "linked_folder_image.jpg").write_bytes(jpeg)
    (root / "tulips" / "linked").symlink_to(outside, target_is_directory=True)
    (root / "tulips" / "linked_file.jpg").symlink_to(root / "roses" / "from_camera" / "cam0.jpg")
    (root / "roses" / "from_camera" / "loop").symlink_to(root / "roses", target_is_directory=True)
    (root / "roses" / "broken.jpg").symlink_to(root / "nowhere.jpg")
    return root


def find_files(root: Path) -> list[str]:
    """`find -L ROOT -type f`, relative, escaped as the listing escapes names (loops: find warns, skips)."""
    out = subprocess.run([b"find", b"-L", os.fsencode(root), b"-type", b"f"], capture_output=True).stdout
    rels = [os.path.relpath(os.fsdecode(line), root) for line in out.splitlines()]
    return sorted(escape_name(r) for r in rels)


def test_every_file_find_lists_is_ingested_ignored_or_rejected(tmp_path: Path) -> None:
    root = messy_tree(tmp_path / "data")
    listing = list_image_folder(str(root))
    assert listing.classes == ("\\xe9t\\xe9", "roses", "tulips")  # by code point: a backslash sorts first
    ingested = {i for i, _ in listing.files}
    rejected = {i: p.reason for i, p in listing.rejected}
    ignored = dict(listing.ignored)
    assert {
        "roses/caf\\xe9_photo.jpg",
        "\\xe9t\\xe9/sun.jpg",
        "roses/from_camera/deeper/cam1.png",
        "tulips/linked/linked_folder_image.jpg",
        "tulips/linked_file.jpg",
    } <= ingested
    assert listing.paths["roses/caf\\xe9_photo.jpg"] == os.fsdecode(b"roses/" + LATIN1_NAME)
    assert ignored["LICENSE.txt"].startswith("not in a class folder")
    assert ignored["tulips/.thumbs/"].startswith("hidden") and ignored["tulips/.DS_Store"].startswith("hidden")
    assert "'.txt'" in rejected["tulips/notes.txt"]
    assert "listed already" in rejected["roses/from_camera/loop/"]
    for path in find_files(root):
        folders = [p for p in list(rejected) + list(ignored) if p.endswith("/") and path.startswith(p)]
        assert path in ingested or path in rejected or path in ignored or folders, f"{path} is not accounted for"
    assert "roses/broken.jpg" in ingested  # a broken link: the worker rejects it ("cannot read the file")


def test_example_gen_ingests_a_non_utf8_name_and_reports_the_rest(tmp_path: Path) -> None:
    from components.ingest.component import image_example_gen
    from components.ingest.ingestion_record import read_report
    from tests.fakes.images import read_split, run_executor

    root = messy_tree(tmp_path / "data")
    examples = run_executor(image_example_gen(str(root), max_rejected_fraction=0.5), tmp_path / "out")
    ids = {row["image_id"] for split in ("train", "eval") for row in read_split(examples.uri, split)}
    assert {"roses/caf\\xe9_photo.jpg", "\\xe9t\\xe9/sun.jpg", "roses/from_camera/deeper/cam1.png"} <= ids
    report = read_report(examples.uri)
    rejected = {r["path"]: r["reason"] for r in report["rejected"]}
    assert "cannot read the file" in rejected["roses/broken.jpg"]
    assert {r["path"] for r in report["ignored"]} >= {"LICENSE.txt", "tulips/.DS_Store", "tulips/.thumbs/"}
    listed = {i for i, _ in list_image_folder(str(root)).files}
    assert listed == ids | (listed & rejected.keys()) and not ids & rejected.keys()  # each file: one fate


def test_cache_key_notices_a_rewrite_at_any_depth_that_tfx_missed(tmp_path: Path) -> None:
    from tfx.components.example_gen.component import FileBasedExampleGen
    from tfx.proto import example_gen_pb2
    from tfx.utils import io_utils

    from components.ingest.component import image_example_gen

    root = tmp_path / "data"
    make_image_folder(root, {"roses": 2, "tulips": 2}, size=(24, 16))
    nested = root / "roses" / "from_camera" / "cam0.jpg"
    nested.parent.mkdir()
    nested.write_bytes(encode(make_image((24, 16), seed=7), "JPEG"))
    before, tfx_before = folder_fingerprint(str(root)), io_utils.generate_fingerprint("images", f"{root}/*/*")
    stat = nested.stat()
    nested.write_bytes(encode(make_image((24, 16), seed=123), "JPEG")[: stat.st_size].ljust(stat.st_size, b"\0"))
    os.utime(nested, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # same size, same second
    assert io_utils.generate_fingerprint("images", f"{root}/*/*") == tfx_before  # what TFX's driver saw
    after = folder_fingerprint(str(root))
    assert after != before
    with open(os.path.join(os.fsencode(root / "roses"), LATIN1_NAME), "wb") as f:
        f.write(b"added")
    with pytest.raises(UnicodeDecodeError):  # TFX's driver died here, naming no file
        io_utils.generate_fingerprint("images", f"{root}/*/*")
    assert folder_fingerprint(str(root)) not in (before, after)

    component = image_example_gen(str(root))
    assert isinstance(component, FileBasedExampleGen) and component.driver_class is ImageFolderDriver
    splits = [example_gen_pb2.Input.Split(name="images", pattern="*/*")]
    processor = ImageFolderDriver(None).get_input_processor(splits, input_base_uri=str(root))
    assert processor.resolve_span_and_version() == (0, None)
    assert processor.get_input_fingerprint(0, None) == f"image_folder:{folder_fingerprint(str(root))}"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder whatever its permissions")
def test_unreadable_folder_is_rejected_with_its_reason(tmp_path: Path) -> None:
    root = tmp_path / "data"
    make_image_folder(root, {"a": 2, "b": 2})
    (root / "a" / "locked").mkdir()
    (root / "a" / "locked").chmod(0)
    try:
        rejected = {i: p.reason for i, p in list_image_folder(str(root)).rejected}
    finally:
        (root / "a" / "locked").chmod(0o755)
    assert "cannot list the folder" in rejected["a/locked/"]


def test_the_cache_key_covers_the_unlabelled_folder_too(tmp_path: Path) -> None:
    """With --data-dir and --unlabeled-dir, the ExampleGen's fingerprint changes when a photo deep in the
    unlabelled folder is rewritten (same size), through the driver's `resolve_exec_properties`."""
    from tfx.components.example_gen import utils

    from components.ingest.component import image_example_gen
    from components.ingest.driver import ImageFolderDriver
    from tests.fakes.images import exec_properties

    root, extra = tmp_path / "data", tmp_path / "extra"
    make_image_folder(root, {"roses": 2, "tulips": 2}, size=(24, 16))
    photo = extra / "2024" / "05" / "p.jpg"
    photo.parent.mkdir(parents=True)
    photo.write_bytes(encode(make_image((24, 16), seed=3), "JPEG"))

    def fingerprint() -> str:
        properties = exec_properties(image_example_gen(str(root), str(extra)))
        return ImageFolderDriver(None).resolve_exec_properties(properties, None, None)[utils.FINGERPRINT_PROPERTY_NAME]

    before = fingerprint()
    assert before.startswith(f"image_folder:{folder_fingerprint(str(root))}\nunlabeled_folder:")
    stat = photo.stat()
    os.utime(photo, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert fingerprint() != before
