"""The ImageExampleGen executor and component on generated images and on a sample of the real flowers."""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.metrics.metric import MetricsFilter

from components.ingest.component import EXAMPLE_GEN_ID, image_example_gen
from components.ingest.executor import METRICS_NAMESPACE, ImageExampleGenExecutor
from components.ingest.files import DataError
from components.ingest.ingestion_record import load_class_names, read_report
from components.ingest.splits import split_of
from tests.fakes.images import (
    FLOWERS,
    IN_MEMORY,
    copy_flowers_sample,
    exec_properties,
    make_image_folder,
    read_split,
    run_executor,
    write_bad_files,
    write_special_images,
)


def expected_counts(ids: list[str], classes: list[str], eval_percent: int = 15) -> dict:
    counts = {s: dict.fromkeys(classes, 0) for s in ("train", "eval")}
    for image_id in ids:
        counts[split_of(image_id, eval_percent)][image_id.split("/")[0]] += 1
    return counts


@pytest.fixture()
def messy_folder(tmp_path: Path) -> tuple[Path, list[str], dict[str, str]]:
    """19 plain JPEGs, 8 unusual valid images (CMYK, grayscale, PNG with alpha, ...) and 10 bad files."""
    root = tmp_path / "data"
    ids = make_image_folder(root, {"a": 8, "b": 6, "c": 5})
    good = [i for class_ids in ids.values() for i in class_ids] + write_special_images(root, "b")
    bad = write_bad_files(root, "a")
    return root, sorted(good), bad


def test_examples_counts_and_report_on_generated_images(messy_folder, tmp_path: Path) -> None:
    root, good, bad = messy_folder
    examples = run_executor(image_example_gen(str(root), max_rejected_fraction=0.5), tmp_path / "out")

    report = read_report(examples.uri)
    assert report["classes"] == ["a", "b", "c"] == load_class_names(examples.uri)
    assert report["counts"] == expected_counts(good, ["a", "b", "c"])
    assert report["counts"]["train"]["b"] + report["counts"]["eval"]["b"] == 6 + 8
    assert [r["path"] for r in report["rejected"]] == sorted(bad)
    for r in report["rejected"]:
        assert bad[r["path"]] in r["reason"], r

    seen = []
    for split in ("train", "eval"):
        for row in read_split(examples.uri, split):
            assert split_of(row["image_id"]) == split
            assert row["class_name"] == row["image_id"].split("/")[0]
            assert row["label"] == report["classes"].index(row["class_name"])
            assert row["image"] == (root / row["image_id"]).read_bytes()  # the file's bytes, unchanged
            decoded = tf.io.decode_image(row["image"], channels=3, expand_animations=False)  # as the Transform
            assert decoded.shape[2] == 3
            seen.append(row["image_id"])
    assert sorted(seen) == good
    assert examples.split_names == '["train", "eval"]'
    assert examples.get_string_custom_property("payload_format") == "FORMAT_TF_EXAMPLE"


def test_split_is_identical_across_runs_and_follows_eval_percent(tmp_path: Path) -> None:
    root = tmp_path / "data"
    make_image_folder(root, {"x": 12, "y": 12})
    splits = []
    for run in range(2):
        examples = run_executor(image_example_gen(str(root)), tmp_path / f"out{run}")
        splits.append({s: sorted(r["image_id"] for r in read_split(examples.uri, s)) for s in ("train", "eval")})
    assert splits[0] == splits[1]
    examples = run_executor(image_example_gen(str(root), eval_percent=50), tmp_path / "out50")
    assert read_report(examples.uri)["counts"] == expected_counts(
        [f"{c}/{c}_{i}.jpg" for c in "xy" for i in range(12)], ["x", "y"], eval_percent=50
    )


def test_beam_counters_count_accepted_and_rejected_files(messy_folder) -> None:
    root, good, bad = messy_folder
    component = image_example_gen(str(root))
    with beam.Pipeline(argv=IN_MEMORY) as pipeline:
        _, outputs, *_ = ImageExampleGenExecutor()._read_and_validate(pipeline, exec_properties(component))
    counters = {
        m.key.metric.name: m.committed
        for m in pipeline.result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]
    }
    decoded = len(bad) - 1  # notes.txt is rejected by its name, before reading
    assert counters["images_accepted"] == len(good)
    assert counters["images_rejected"] == decoded
    # truncated JPEG/PNG, no JPEG end marker, no PNG IEND, damaged JPEG scan data (issue 28, item 2)
    assert counters["rejected_corrupt"] == 5
    assert counters["rejected_bad_dimensions"] == 2 and counters["rejected_empty"] == 1
    assert counters["rejected_not_an_image"] == 1 and counters["rejected_unsupported_format"] == 1


def test_missing_folder_or_no_class_folders_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"data folder {tmp_path}/missing does not exist"):
        run_executor(image_example_gen(str(tmp_path / "missing")), tmp_path / "out1")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "img.jpg").write_bytes(b"x")
    with pytest.raises(DataError, match="holds no class folders"):
        run_executor(image_example_gen(str(tmp_path / "flat")), tmp_path / "out2")


def test_class_with_no_valid_image_fails_and_names_the_class(tmp_path: Path) -> None:
    root = tmp_path / "data"
    make_image_folder(root, {"good": 10})
    (root / "broken").mkdir()
    (root / "broken" / "1.jpg").write_bytes(b"")
    (root / "broken" / "2.png").write_text("text")
    with pytest.raises(
        DataError,
        match="class 'broken' in data folder .* has no valid image: all 2 of its files "
        r"were rejected \(broken/1.jpg: empty file \(0 bytes\); broken/2.png: not an",
    ) as err:
        run_executor(image_example_gen(str(root), max_rejected_fraction=0.5), tmp_path / "out")
    assert err.value.report == read_report(str(tmp_path / "out"))  # TFX deletes the file when Do fails
    assert [r["path"] for r in err.value.report["rejected"]] == ["broken/1.jpg", "broken/2.png"]


def test_too_many_rejected_files_fail_with_the_share(tmp_path: Path) -> None:
    root = tmp_path / "data"
    make_image_folder(root, {"a": 8, "b": 2})
    for i in range(2):  # 2 of 12 = 16.7% > 10%
        (root / "a" / f"bad{i}.jpg").write_bytes(b"")
    with pytest.raises(
        DataError,
        match=r"2 of 12 files \(16.7%\) in data folder .* more than the allowed 10.0% "
        r"\(max_rejected_fraction\): a/bad0.jpg: empty file \(0 bytes\); a/bad1.jpg",
    ):
        run_executor(image_example_gen(str(root)), tmp_path / "out")
    run_executor(image_example_gen(str(root), max_rejected_fraction=0.2), tmp_path / "out2")  # allowed


@pytest.mark.skipif(not FLOWERS.is_dir(), reason=f"the real flowers are not at {FLOWERS}")
def test_sample_of_the_real_flowers(tmp_path: Path) -> None:
    ids = copy_flowers_sample(tmp_path / "flowers", per_class=5)
    examples = run_executor(image_example_gen(str(tmp_path / "flowers")), tmp_path / "out")
    report = read_report(examples.uri)
    classes = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    all_ids = [i for class_ids in ids.values() for i in class_ids]
    assert report["classes"] == classes and report["rejected"] == []
    assert report["counts"] == expected_counts(all_ids, classes)
    assert sum(sum(c.values()) for c in report["counts"].values()) == 25


@pytest.mark.slow
def test_pipeline_with_statistics_and_schema_on_two_worker_processes(messy_folder, tmp_path: Path) -> None:
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfx import v1 as tfx
    from tfx.utils import io_utils

    from components.ingest.inputs import ImageInput
    from pipeline.ingestion import ingestion_components
    from pipeline.local_runner import beam_pipeline_args, latest_artifact_uri, metadata_connection, run_local

    root, good, _ = messy_folder
    metadata = str(tmp_path / "metadata.sqlite")
    run_local(
        tfx.dsl.Pipeline(
            pipeline_name="ingest-test",
            pipeline_root=str(tmp_path / "root"),
            components=ingestion_components(ImageInput(data_dir=str(root)), max_rejected_fraction=0.5),
            metadata_connection_config=metadata_connection(metadata),
            beam_pipeline_args=beam_pipeline_args(),
        ),
        workers=2,
    )
    examples_uri = latest_artifact_uri(metadata, EXAMPLE_GEN_ID)
    assert read_report(examples_uri)["counts"] == expected_counts(good, ["a", "b", "c"])
    assert sorted(r["image_id"] for s in ("train", "eval") for r in read_split(examples_uri, s)) == good
    stats_files = sorted(
        Path(latest_artifact_uri(metadata, "StatisticsGen", "statistics")).glob("Split-*/FeatureStats.pb")
    )
    assert len(stats_files) == 2
    features = {f.path.step[0]: f for f in tfdv.load_stats_binary(str(stats_files[1])).datasets[0].features}
    # The image bytes are declared image_domain: counted and measured as bytes, no top-k sketch of unique JPEGs.
    assert features["image"].WhichOneof("stats") == "bytes_stats"
    assert features["image"].bytes_stats.common_stats.num_non_missing > 0
    assert features["image"].bytes_stats.avg_num_bytes > 100
    assert features["class_name"].string_stats.top_values
    schema_file = Path(latest_artifact_uri(metadata, "SchemaGen", "schema")) / "schema.pbtxt"
    schema = io_utils.parse_pbtxt_file(str(schema_file), schema_pb2.Schema())
    assert {f.name: f.type for f in schema.feature} == {
        "image": schema_pb2.BYTES,
        "label": schema_pb2.INT,
        "class_name": schema_pb2.BYTES,
        "image_id": schema_pb2.BYTES,
    }
