"""`simsiam-tfx embed` / `search`, the index file, and the EmbeddingIndexer TFX component."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from serving.ann import AnnIndex
from serving.backends import LocalBackend
from serving.index import EmbeddingIndex, IndexFileError, nearest, precision_at_k
from tests.fakes.images import bad_files, encode, make_image, make_image_folder

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    from tests.fakes.synthetic_model import build_synthetic_serving_model

    return build_synthetic_serving_model(str(tmp_path_factory.mktemp("model") / "1"), class_names=("a", "b"))


@pytest.fixture(scope="module")
def local(model_dir) -> LocalBackend:
    return LocalBackend(model_dir)


def embed_direct(local: LocalBackend, images: list[bytes]) -> np.ndarray:
    import tensorflow as tf

    return local._model.signatures["embed_images"](images=tf.constant(images))["embedding"].numpy()


# ---------------------------------------------------------------- the index, by hand


def test_nearest_by_hand():
    base = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [-3.0, 0.0]])
    rows, sims = nearest(base, np.array([[2.0, 0.0], [0.0, 1.0]]), k=3)
    # query (1, 0): cos = 1, 0, 1/sqrt(2), -1 ; query (0, 1): 0, 1, 1/sqrt(2), 0 (tie: lower row first)
    np.testing.assert_array_equal(rows, [[0, 2, 1], [1, 2, 0]])
    np.testing.assert_allclose(sims, [[1.0, 2**-0.5, 0.0], [1.0, 2**-0.5, 0.0]], atol=1e-6)
    assert nearest(base, np.array([[1.0, 0.0]]), k=10)[0].shape == (1, 4)  # k larger than the index
    with pytest.raises(IndexFileError, match="another model"):
        nearest(base, np.ones((1, 3)), k=1)


def test_precision_at_k_by_hand():
    neighbour_labels = np.array([[0, 0, 1, 0, 2], [1, 1, 1, 1, 1]])
    assert precision_at_k(neighbour_labels, np.array([0, 2])) == pytest.approx((3 / 5 + 0 / 5) / 2)


def test_index_file_round_trip(tmp_path):
    index = EmbeddingIndex(
        paths=np.array(["roses/ä.jpg", "b.png"]),
        embeddings=np.eye(2, dtype=np.float32),
        labels=np.array([1, -1]),
        class_names=np.array(["daisy", "roses"]),
        splits=np.array(["train", "eval"]),
        model="runs/x/serving/1",
        model_fingerprint="42",
    )
    path = index.save(str(tmp_path / "sub" / "my.index"))  # any name: no ".npz" appended
    assert path.endswith("my.index") and os.path.isfile(path)
    loaded = EmbeddingIndex.load(path)
    assert loaded.paths.tolist() == ["roses/ä.jpg", "b.png"] and loaded.model_fingerprint == "42"
    assert (loaded.class_of(0), loaded.class_of(1)) == ("roses", None)
    assert loaded.select(loaded.splits == "eval").paths.tolist() == ["b.png"]
    with pytest.raises(IndexFileError, match=r"\[N=1, D\]"):
        EmbeddingIndex(paths=np.array(["a"]), embeddings=np.zeros((2, 3)))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(IndexFileError, match="not an embedding index"):
        EmbeddingIndex.load(str(tmp_path / "bad.npz"))


def test_index_with_a_thumbnail_sample_by_hand(tmp_path):
    thumbs = np.arange(2 * 2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 2, 3)
    index = EmbeddingIndex(
        paths=np.array(["a", "b", "c", "d"]),
        embeddings=np.eye(4, dtype=np.float32),
        splits=np.array(["train", "eval", "train", "eval"]),
        thumbnails=thumbs,
        thumbnail_rows=np.array([1, 2]),
    )
    assert index.thumbnail(0) is None and index.thumbnail(3) is None
    np.testing.assert_array_equal(index.thumbnail(2), thumbs[1])
    loaded = EmbeddingIndex.load(index.save(str(tmp_path / "t.npz")))
    np.testing.assert_array_equal(loaded.thumbnail_rows, [1, 2])
    train = loaded.select(loaded.splits == "train")  # rows a, c: c becomes row 1, keeps its thumbnail
    assert train.paths.tolist() == ["a", "c"] and train.thumbnail_rows.tolist() == [1]
    np.testing.assert_array_equal(train.thumbnail(1), thumbs[1])
    assert train.thumbnail(0) is None
    with pytest.raises(IndexFileError, match="one row < 4 per thumbnail"):
        EmbeddingIndex(
            paths=index.paths, embeddings=index.embeddings, thumbnails=thumbs, thumbnail_rows=np.array([1, 4])
        )


def test_thumbnails_of_a_seeded_sample_of_rows(model_dir, tmp_path):
    from components.index.embedding_index import _thumbnail, build_index

    images = [encode(make_image((40, 36), seed=i), "JPEG") for i in range(7)]
    _write_examples(tmp_path, {"train": [(f"a/{i}.jpg", 0, data) for i, data in enumerate(images)]}, ["a", "b"])
    split_uris = {"train": str(tmp_path / "Split-train")}
    index, _ = build_index(model_dir, str(tmp_path), split_uris, batch_size=3, thumbnail_size=16, max_thumbnails=3)
    rows = index.thumbnail_rows
    assert len(rows) == 3 and rows.tolist() == sorted(set(rows.tolist())) and index.thumbnails.shape == (3, 16, 16, 3)
    for row in rows:  # each sampled row's own picture
        np.testing.assert_array_equal(index.thumbnail(row), _thumbnail(images[row], 16))
    again, _ = build_index(model_dir, str(tmp_path), split_uris, batch_size=3, thumbnail_size=16, max_thumbnails=3)
    assert again.thumbnail_rows.tolist() == rows.tolist()  # seeded
    every, _ = build_index(model_dir, str(tmp_path), split_uris, batch_size=3, thumbnail_size=16, max_thumbnails=7)
    assert every.thumbnail_rows is None and every.thumbnails.shape == (7, 16, 16, 3)


# ---------------------------------------------------------------- the commands


@pytest.fixture()
def photo_dir(tmp_path) -> tuple[Path, list[str], dict[str, str]]:
    ids = make_image_folder(tmp_path / "photos", counts={"a": 3, "b": 3}, size=(48, 40))
    bad = {}
    for name, (data, _) in bad_files().items():
        (tmp_path / "photos" / "b" / name).write_bytes(data)
        bad[f"b/{name}"] = name
    (tmp_path / "photos" / ".hidden.jpg").write_bytes(b"ignored")
    good = sorted(i for v in ids.values() for i in v)
    return tmp_path / "photos", good, bad


def test_embed_writes_good_images_and_lists_the_bad(photo_dir, local, model_dir, tmp_path, capsys):
    root, good, bad = photo_dir
    out = tmp_path / "emb.npz"
    assert (
        main(
            [
                "embed",
                "--model",
                model_dir,
                "--output",
                str(out),
                str(root),
                str(tmp_path / "nope.jpg"),
                "--batch-size",
                "4",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    index = EmbeddingIndex.load(str(out))
    assert index.paths.tolist() == [str(root / i) for i in good]  # walk order: sorted, recursive
    expected = embed_direct(local, [(root / i).read_bytes() for i in good])
    np.testing.assert_allclose(index.embeddings, expected, rtol=1e-5, atol=1e-6)
    skipped = [line for line in printed.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == len(bad) + 1
    for image_id in bad:
        assert any(line.startswith(f"skipped {root / image_id}: ") for line in skipped), image_id
    assert f"skipped {tmp_path / 'nope.jpg'}: no such file or folder" in skipped
    assert ".hidden" not in printed and "ignored 1 hidden entry (names starting with '.')" in printed
    assert index.model_fingerprint == local.fingerprint()
    last = re.fullmatch(
        r"embedded (\d+) images, skipped (\d+), in ([\d.]+)s \(([\d.]+) images/s\)", printed.splitlines()[-1]
    )
    assert last and (int(last[1]), int(last[2])) == (len(good), len(bad) + 1), printed.splitlines()[-1]
    assert float(last[3]) > 0 and float(last[4]) > 0


def test_embed_rate_line_by_hand():
    from pipeline.commands.embed import rate_line

    assert rate_line(10, 2, 4.0) == "embedded 10 images, skipped 2, in 4.0s (2.5 images/s)"


def test_embed_with_nothing_to_embed_fails(model_dir, tmp_path, capsys):
    (tmp_path / "x.txt").write_text("text")
    assert main(["embed", "--model", model_dir, "--output", str(tmp_path / "o.npz"), str(tmp_path / "x.txt")]) == 1
    assert "no image could be embedded" in capsys.readouterr().err and not (tmp_path / "o.npz").exists()
    assert main(["embed", "--model", str(tmp_path / "missing"), "--output", "o.npz", str(tmp_path)]) == 2


def test_search_prints_cosine_neighbours_and_plots(photo_dir, local, model_dir, tmp_path, capsys):
    root, good, _ = photo_dir
    index_path = tmp_path / "emb.npz"
    assert main(["embed", "--model", model_dir, "--output", str(index_path), str(root)]) == 0
    query = tmp_path / "query.jpg"
    query.write_bytes(encode(make_image((50, 44), seed=2), "JPEG"))
    capsys.readouterr()
    plot = tmp_path / "plot" / "n.png"
    assert (
        main(
            [
                "search",
                "--index",
                str(index_path),
                "--model",
                model_dir,
                "--query",
                str(query),
                "-k",
                "3",
                "--plot",
                str(plot),
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    table = [line.split() for line in lines[2:5]]
    index = EmbeddingIndex.load(str(index_path))
    q = embed_direct(local, [query.read_bytes()])[0]
    cos = index.embeddings @ q / np.linalg.norm(index.embeddings, axis=1) / np.linalg.norm(q)
    order = np.argsort(-cos, kind="stable")[:3]
    assert [row[3] for row in table] == [index.paths[i] for i in order]
    np.testing.assert_allclose([float(row[1]) for row in table], cos[order], atol=1e-4)
    assert [row[0] for row in table] == ["1", "2", "3"]
    from PIL import Image

    with Image.open(plot) as picture:
        assert picture.format == "PNG" and picture.size[0] > picture.size[1]


def test_search_errors(photo_dir, model_dir, tmp_path, capsys):
    root, good, _ = photo_dir
    index_path = str(tmp_path / "i.npz")
    EmbeddingIndex(paths=np.array(["x"]), embeddings=np.ones((1, 3), np.float32)).save(index_path)
    query = str(root / good[0])
    assert main(["search", "--index", index_path, "--model", model_dir, "--query", query]) == 2
    assert "another model" in capsys.readouterr().err
    (tmp_path / "q.txt").write_text("not an image")
    assert main(["search", "--index", index_path, "--model", model_dir, "--query", str(tmp_path / "q.txt")]) == 2
    assert "not an image" in capsys.readouterr().err
    assert main(["search", "--index", str(tmp_path / "none.npz"), "--model", model_dir, "--query", query]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["search", "--index", index_path, "--model", model_dir, "--query", query, "--split", "x"]) == 2
    assert "no splits" in capsys.readouterr().err


def test_search_refuses_another_models_index_an_empty_index_and_bad_embeddings(
    photo_dir, local, model_dir, tmp_path, capsys
):
    root, good, _ = photo_dir
    query = str(root / good[0])
    dim = embed_direct(local, [(root / good[0]).read_bytes()]).shape[1]
    other = str(tmp_path / "other.npz")  # the right width, but another model's fingerprint
    EmbeddingIndex(
        paths=np.array(["x", "y"]),
        embeddings=np.eye(2, dim, dtype=np.float32),
        model="elsewhere/1",
        model_fingerprint="0123",
    ).save(other)
    assert main(["search", "--index", other, "--model", model_dir, "--query", query]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {other} was built by another model (elsewhere/1, fingerprint 0123) than ")
    assert err.count("\n") == 1
    empty = str(tmp_path / "empty.npz")
    EmbeddingIndex(paths=np.array([], dtype=str), embeddings=np.zeros((0, dim), np.float32)).save(empty)
    assert main(["search", "--index", empty, "--model", model_dir, "--query", query]) == 2
    assert capsys.readouterr().err == f"error: index {empty} is empty: it has no row to search\n"
    np.save(tmp_path / "short.npy", np.ones(dim - 1, np.float32))
    assert main(["search", "--index", other, "--query-embedding", str(tmp_path / "short.npy")]) == 2
    assert (
        f"is {dim - 1}-d but the index holds {dim}-d embeddings: it comes from another model" in capsys.readouterr().err
    )
    (tmp_path / "text.npy").write_text("not numpy")
    assert main(["search", "--index", other, "--query-embedding", str(tmp_path / "text.npy")]) == 2
    assert "not a numpy .npy array" in capsys.readouterr().err
    assert main(["search", "--index", other, "--query", query]) == 2
    assert "--query needs --model" in capsys.readouterr().err


def test_search_by_embedding_answers_every_row_when_k_is_larger(tmp_path, capsys):
    vectors = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], np.float32)
    path = str(tmp_path / "e.npz")
    EmbeddingIndex(paths=np.array(["a.jpg", "b.jpg", "c.jpg"]), embeddings=vectors).save(path)
    np.save(tmp_path / "q.npy", np.array([3.0, 0.0], np.float32))
    assert main(["search", "--index", path, "--query-embedding", str(tmp_path / "q.npy"), "-k", "10"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"3 nearest of 3 to {tmp_path / 'q.npy'} (all of them: -k 10 is more than the 3 rows searched):"
    # cosines with (1, 0): 1, 0, 1/sqrt(2)
    assert [line.split() for line in lines[2:]] == [
        ["1", "1.0000", "-", "a.jpg"],
        ["2", "0.7071", "-", "c.jpg"],
        ["3", "0.0000", "-", "b.jpg"],
    ]


def test_embed_through_rest_equals_local(photo_dir, local, model_dir, tmp_path):
    from tests.fakes.tf_serving import make_rest_server

    root, good, _ = photo_dir
    server = make_rest_server(local, "simsiam")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1/models/simsiam"
        assert main(["embed", "--model", url, "--output", str(tmp_path / "r.npz"), str(root / "a")]) == 0
    finally:
        server.shutdown()
    assert main(["embed", "--model", model_dir, "--output", str(tmp_path / "l.npz"), str(root / "a")]) == 0
    remote, here = EmbeddingIndex.load(str(tmp_path / "r.npz")), EmbeddingIndex.load(str(tmp_path / "l.npz"))
    assert remote.paths.tolist() == here.paths.tolist() and remote.model == url
    np.testing.assert_allclose(remote.embeddings, here.embeddings, rtol=1e-6)


# ---------------------------------------------------------------- the TFX component


def _write_examples(root: Path, splits: dict[str, list[tuple[str, int, bytes]]], classes: list[str]) -> None:
    """What the ImageExampleGen writes: GZIP TFRecords of tf.Examples per split, plus its report."""
    import tensorflow as tf

    def feature(value) -> tf.train.Feature:
        if isinstance(value, int):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    for split, rows in splits.items():
        (root / f"Split-{split}").mkdir(parents=True)
        path = str(root / f"Split-{split}" / "data_tfrecord-00000-of-00001.gz")
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
            for image_id, label, data in rows:
                features = {
                    "image": feature(data),
                    "label": feature(label),
                    "class_name": feature(classes[label].encode()),
                    "image_id": feature(image_id.encode()),
                }
                writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
    (root / "ingestion_report.json").write_text(json.dumps({"classes": classes, "counts": {}, "rejected": []}))


def _indexer_pipeline(model_dir: str, tmp_path: Path, rows: dict, **indexer_args):
    """Importers of examples (`rows` per split, classes a and b) and a model, then the EmbeddingIndexer."""
    import shutil

    from tfx import v1 as tfx
    from tfx.orchestration import metadata
    from tfx.types import standard_artifacts

    from components.index.embedding_index import EmbeddingIndexer

    examples_dir = tmp_path / "examples"
    _write_examples(examples_dir, rows, ["a", "b"])
    model_artifact = tmp_path / "model_artifact"
    shutil.copytree(model_dir, model_artifact / "Format-Serving")
    examples = tfx.dsl.Importer(
        source_uri=str(examples_dir),
        artifact_type=standard_artifacts.Examples,
        properties={"split_names": json.dumps(list(rows))},
    ).with_id("examples")
    model = tfx.dsl.Importer(source_uri=str(model_artifact), artifact_type=standard_artifacts.Model).with_id("model")
    indexer = EmbeddingIndexer(
        model=model.outputs["result"],
        examples=examples.outputs["result"],
        batch_size=2,
        thumbnail_size=16,
        **indexer_args,
    )
    return tfx.dsl.Pipeline(
        pipeline_name="indexer-test",
        pipeline_root=str(tmp_path / "root"),
        components=[examples, model, indexer],
        metadata_connection_config=metadata.sqlite_metadata_connection_config(str(tmp_path / "m.sqlite")),
    )


def test_embedding_indexer_component_in_a_local_pipeline(model_dir, local, tmp_path):
    from tfx import v1 as tfx

    from components import features as F

    classes = ["a", "b"]
    rows = {
        "train": [
            (f"{classes[i % 2]}/t{i}.jpg", i % 2, encode(make_image((40 + i, 36), seed=i), "JPEG")) for i in range(5)
        ],
        "eval": [("b/e0.png", 1, encode(make_image((30, 30), seed=9), "PNG"))],
    }
    tfx.orchestration.LocalDagRunner().run(_indexer_pipeline(model_dir, tmp_path, rows))

    found = list((tmp_path / "root").glob(f"EmbeddingIndexer/embedding_index/*/{F.INDEX_FILE}"))
    assert len(found) == 1, found
    index = EmbeddingIndex.load(str(found[0]))
    assert index.paths.tolist() == [r[0] for r in rows["train"]] + ["b/e0.png"]
    assert index.splits.tolist() == ["train"] * 5 + ["eval"]
    assert index.labels.tolist() == [0, 1, 0, 1, 0, 1] and index.class_names.tolist() == classes
    np.testing.assert_allclose(
        index.embeddings, embed_direct(local, [r[2] for r in rows["train"] + rows["eval"]]), rtol=1e-5, atol=1e-6
    )
    assert index.thumbnails.shape == (6, 16, 16, 3) and index.thumbnails.dtype == np.uint8
    assert index.model_fingerprint == local.fingerprint()
    report = json.loads((found[0].parent / "index_report.json").read_text())
    assert {k: report[k] for k in ("counts", "dimension", "failed")} == {
        "counts": {"train": 5, "eval": 1},
        "dimension": index.embeddings.shape[1],
        "failed": [],
    }
    gate = report["gate"]  # 6 rows: every row is a query, its 5 other rows the answer; exact search
    assert (gate["kind"], gate["rows"], gate["queries"], gate["recall_at_10"], gate["passed"]) == (
        "exact",
        6,
        6,
        1.0,
        True,
    )
    assert gate["min_recall"] == 0.95 and gate["threads"] >= 1
    ann_index = AnnIndex.load(str(found[0].parent))
    assert (ann_index.meta.rows, ann_index.meta.model_fingerprint) == (6, local.fingerprint())

    # `search --query-embedding` on that artifact: the faiss index's answer, without TensorFlow.
    np.save(tmp_path / "q.npy", index.embeddings[5])
    code = (
        "import sys; from pipeline.cli import main; "
        f"rc = main(['search', '--index', {str(found[0])!r}, '--query-embedding', {str(tmp_path / 'q.npy')!r}, "
        "'-k', '3', '--split', 'train']); "
        "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'; sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    train = index.embeddings[:5]
    cos = train @ index.embeddings[5] / np.linalg.norm(train, axis=1) / np.linalg.norm(index.embeddings[5])
    table = [line.split() for line in done.stdout.splitlines()[2:]]
    assert [row[3] for row in table] == [index.paths[i] for i in np.argsort(-cos)[:3]]
    np.testing.assert_allclose([float(row[1]) for row in table], np.sort(cos)[::-1][:3], atol=1e-4)


def test_embedding_indexer_fails_below_the_recall_threshold(model_dir, tmp_path):
    """An exact index scores recall 1.0, so a threshold above 1 must fail the step, with its figures,
    and leave no index behind."""
    from tfx import v1 as tfx

    from serving.ann import IndexGateError

    rows = {"train": [(f"a/t{i}.jpg", 0, encode(make_image((40, 36), seed=i), "JPEG")) for i in range(4)]}
    pipeline = _indexer_pipeline(model_dir, tmp_path, rows, min_recall=1.5)
    with pytest.raises(IndexGateError, match=r"recall_at_10 = 1\.0000 < 1\.5 \(exact index, 4 rows"):
        tfx.orchestration.LocalDagRunner().run(pipeline)
    assert not list((tmp_path / "root").glob("EmbeddingIndexer/embedding_index/*/index.*"))


# ---------------------------------------------------------------- on the smoke pipeline's pushed model


@pytest.mark.slow
def test_search_right_after_the_pipeline(smoke_run, tmp_path, capsys):
    summary = smoke_run["summary"]
    index_path = summary.get("embedding_index")
    assert index_path and os.path.isfile(index_path), "summary.json must name the EmbeddingIndexer's index.npz"
    index = EmbeddingIndex.load(index_path)
    data_dir, unlabeled_dir = Path(smoke_run["data_dir"]), Path(smoke_run["unlabeled_dir"])
    files = sorted(
        p.relative_to(folder).as_posix() for folder in (data_dir, unlabeled_dir) for p in folder.glob("*/*.jpg")
    )
    assert sorted(index.paths.tolist()) == files  # every ingested image, labelled or not, train and eval
    assert {"train", "eval", "unlabeled_train"} <= set(index.splits.tolist())
    assert (index.labels[np.char.startswith(index.splits.astype(str), "unlabeled")] == -1).all()
    eval_rows = np.flatnonzero(index.splits == "eval")
    query = data_dir / str(index.paths[eval_rows[0]])
    # The command the run printed, as printed, with IMAGE replaced by a photo.
    (hint,) = [ln.split("search it: ", 1)[1] for ln in smoke_run["stdout"].splitlines() if "search it: " in ln]
    command = [str(query) if arg == "IMAGE" else arg for arg in shlex.split(hint)]
    assert command[:2] == ["simsiam-tfx", "search"] and summary["serving_model_dir"] in command
    assert main([*command[1:], "--split", "train", "-k", "5", "--plot", str(tmp_path / "n.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 + 5 + 1 and lines[-1] == f"wrote {tmp_path / 'n.png'}"
    assert (tmp_path / "n.png").stat().st_size > 1000
    assert all(line.split()[3].split("/")[0] in index.class_names.tolist() for line in lines[2:7])


def test_embed_prints_no_native_log_lines_but_still_reports_real_errors(photo_dir, model_dir, tmp_path):
    """A fresh `simsiam-tfx embed` with no TF_CPP_MIN_LOG_LEVEL of the user's: TensorFlow's and XLA's C++
    log lines at import ("Unable to register cuDNN factory", "Could not find cuda drivers") stay off,
    while the command's own errors (a rejected file, a model that is not there) are still printed."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    root, _, bad = photo_dir

    def embed(model: str) -> subprocess.CompletedProcess:
        args = [sys.executable, "-m", "pipeline.cli", "embed", str(root), "--model", model]
        args += ["--output", str(tmp_path / "e.npz")]
        return subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)

    native = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] |[IWEF]\d{4} |WARNING: All log messages)")
    good = embed(model_dir)
    assert good.returncode == 0, good.stderr[-2000:]
    assert not [line for line in good.stderr.splitlines() if native.match(line)], good.stderr[-2000:]
    assert all(path in good.stdout + good.stderr for path in bad)  # the rejected files are still named
    missing = embed(str(tmp_path / "no_model"))
    assert missing.returncode != 0 and "no_model" in missing.stderr
    assert not [line for line in missing.stderr.splitlines() if native.match(line)], missing.stderr[-2000:]
