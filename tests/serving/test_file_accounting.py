"""`simsiam-tfx embed` accounts for every file it is given exactly once, as ingestion does: a file reached
by two spellings, through a link or twice on the command line is embedded once and the other names say
why they were skipped; files in a linked folder are found; hidden entries are counted apart; `~` is
the home folder even when the shell did not expand it."""

from __future__ import annotations

import os
from pathlib import Path

from serving.files import collect_files


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_every_file_once_whatever_its_spelling_or_link(tmp_path: Path) -> None:
    a = _touch(tmp_path / "photos" / "a.jpg")
    b = _touch(tmp_path / "photos" / "sub" / "b.jpg")
    c = _touch(tmp_path / "elsewhere" / "c.jpg")
    os.symlink(tmp_path / "elsewhere", tmp_path / "photos" / "linked")  # a linked folder
    os.symlink(a, tmp_path / "photos" / "alias.jpg")  # a second name for a.jpg
    os.symlink(tmp_path / "photos", tmp_path / "photos" / "sub" / "loop")  # a cycle back to the top
    _touch(tmp_path / "photos" / ".DS_Store")

    files, skipped, hidden = collect_files(
        [str(tmp_path / "photos"), str(tmp_path / "photos" / "." / "a.jpg"), str(b), str(tmp_path / "missing")]
    )
    assert sorted(os.path.realpath(f) for f in files) == sorted(os.path.realpath(p) for p in (a, b, c))
    assert len(files) == 3
    reasons = {Path(path).name: reason for path, reason in skipped}
    assert reasons["alias.jpg"].startswith("the same file as ") and reasons["alias.jpg"].endswith("a.jpg")
    assert reasons["a.jpg"].startswith("the same file as ")  # the second spelling on the command line
    assert reasons["b.jpg"].startswith("the same file as ")
    assert hidden == [str(tmp_path / "photos" / ".DS_Store")]
    assert reasons["loop"].startswith("a link back to ")
    assert reasons["missing"] == "no such file or folder"
    # Every name given or found is either embedded or has its reason: nothing silently dropped.
    assert len(files) + len(skipped) + len(hidden) == 9


def test_an_unexpanded_tilde_is_the_home_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    photo = _touch(tmp_path / "pics" / "p.png")
    files, skipped, hidden = collect_files(["~/pics"])
    assert files == [str(photo)] and skipped == [] and hidden == []
