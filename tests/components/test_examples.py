"""The one reader of examples and its fixed, bounded samples (components/examples.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from components import examples
from components import features as F

REPO = Path(__file__).resolve().parents[2]
IDS = [f"class{i % 3}/photo_{i:04d}.jpg" for i in range(300)]


def test_the_sample_is_the_ids_of_smallest_key_whatever_the_stream_order() -> None:
    expected = sorted(IDS, key=examples.sample_key)[:40]
    forward, backward = examples.HashSample(40), examples.HashSample(40)
    for image_id in IDS:
        forward.offer(image_id, image_id.upper())
    for image_id in reversed(IDS):
        backward.offer(image_id, image_id.upper())
    assert forward.ids() == backward.ids() == expected  # by ascending key, capped at 40
    assert forward.items() == [i.upper() for i in expected] and forward.seen == 300


def test_an_item_is_made_only_when_the_sample_keeps_it() -> None:
    made = []
    sample = examples.HashSample(5)
    kept = [sample.offer(i, lambda i=i: made.append(i) or i) for i in IDS]
    assert len(made) == sum(kept)  # no decode for a skipped image
    assert len(made) < 60  # bottom-5 of 300: about 5 * ln(60) ~ 20 replacements expected, not 300
    assert sample.items() == sample.ids()


def test_a_sample_of_more_than_the_data_keeps_everything() -> None:
    sample = examples.HashSample(1000)
    for image_id in IDS:
        sample.offer(image_id, 1)
    assert sorted(sample.ids()) == sorted(IDS)
    with pytest.raises(ValueError, match="at least 1"):
        examples.HashSample(0)


def test_the_key_is_the_same_in_another_process() -> None:
    """Python's own hash() changes with PYTHONHASHSEED; the sample must not (another machine, another run)."""
    code = "from components import examples; print(examples.sample_key('roses/1.jpg'))"
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert int(out.stdout) == examples.sample_key("roses/1.jpg") == examples.sample_key(b"roses/1.jpg")


def test_the_stratified_sample_keeps_the_class_proportions() -> None:
    ids = [f"a/{i}" for i in range(100)] + [f"b/{i}" for i in range(300)]
    labels = [0] * 100 + [1] * 300
    chosen = examples.stratified_ids(ids, labels, 40)
    assert sum(i.startswith("a/") for i in chosen) == 10 and sum(i.startswith("b/") for i in chosen) == 30
    assert chosen == examples.stratified_ids(list(reversed(ids)), list(reversed(labels)), 40)
    assert examples.stratified_ids(ids, labels, 400) == set(ids)


def _write_split(folder: Path, n: int, labelled: int) -> str:
    """ImageExampleGen's raw examples (make_example), in two GZIP files: the first `labelled` in class 0/1."""
    import tensorflow as tf

    from components.ingest.executor import make_example

    folder.mkdir(parents=True)
    for part in range(2):
        with tf.io.TFRecordWriter(str(folder / f"data-{part}.gz"), options="GZIP") as writer:
            for i in range(part, n, 2):
                name = f"c{i % 2}" if i < labelled else None
                writer.write(make_example(f"img/{i}.jpg", name, i % 2, b"pixels%d" % i).SerializeToString())
    return str(folder / "*")


def test_a_split_is_sampled_in_one_streaming_pass_through_tfxio(tmp_path: Path) -> None:
    pattern = _write_split(tmp_path / "Split-train", n=50, labelled=30)
    read = examples.tf_example_reader()
    ids, images, labels, counts = examples.sample_split(read, pattern, 12, image_feature=F.IMAGE, decode=bytes)
    expected = sorted((f"img/{i}.jpg" for i in range(50)), key=examples.sample_key)[:12]
    assert ids == expected and counts == {"examples": 50, "labelled": 30}
    numbers = [int(i.split("/")[1].split(".")[0]) for i in ids]
    assert images == [b"pixels%d" % n for n in numbers]  # each id with its own image
    assert labels.tolist() == [n % 2 if n < 30 else -1 for n in numbers]
    again = examples.sample_split(read, pattern, 12, image_feature=F.IMAGE, decode=bytes)
    assert again[0] == ids
    assert examples.count(read, pattern) == 50
    all_ids, all_labels = examples.ids_and_labels(read, pattern)
    assert sorted(all_ids) == sorted(f"img/{i}.jpg" for i in range(50)) and int((all_labels >= 0).sum()) == 30


def test_a_missing_split_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no examples match"):
        examples.read(examples.tf_example_reader(), str(tmp_path / "Split-none" / "*"), None)


def test_the_shuffled_read_is_a_seeded_permutation(tmp_path: Path) -> None:
    pattern = _write_split(tmp_path / "Split-train", n=40, labelled=40)
    read, schema = examples.tf_example_reader(), examples.feature_schema({F.IMAGE_ID: "string"})

    def order(seed: int) -> list[bytes]:
        batches = examples.read(read, pattern, schema, batch_size=7, shuffle_seed=seed, shuffle_buffer=8)
        return [v for b in batches.as_numpy_iterator() for v in np.asarray(b[F.IMAGE_ID]).reshape(-1)]

    first = order(3)
    assert sorted(first) == sorted(b"img/%d.jpg" % i for i in range(40))
    assert order(3) == first and order(4) != first
