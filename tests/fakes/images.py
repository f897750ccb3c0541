"""Test images: generated folders of class folders, every kind of bad file, and a sample of the real data.

    from tests.fakes.images import make_image_folder, write_bad_files
    ids = make_image_folder(tmp_path / "data", counts={"a": 3, "b": 2}, size=(40, 30), fmt="JPEG")
    bad = write_bad_files(tmp_path / "data", class_name="a")   # {image_id: words its reason contains}

Every generated image is distinct (seeded noise over a gradient), so no two files share bytes.
`run_executor(image_example_gen(folder), out)` runs the ExampleGen in seconds (no orchestrator) and
`read_split(out, "train")` reads its examples back; `prepare_local_tf_flowers` makes an offline TFDS
tf_flowers. TensorFlow, TFX and TFDS are imported only by the functions that need them.
"""

from __future__ import annotations

import io
import shutil
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

FLOWERS = Path(__file__).resolve().parents[2].parent / "shared" / "flowers" / "flower_photos"
FLOWER_CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")


def make_image(size: tuple[int, int] = (40, 30), mode: str = "RGB", seed: int = 0) -> Image.Image:
    """A (width, height) image: a colour gradient plus seeded noise, converted to `mode`."""
    width, height = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), np.full_like(x, (seed * 37) % 256)], axis=-1
    )
    pixels = np.clip(base + rng.integers(-40, 40, base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB").convert(mode)


def encode(image: Image.Image, fmt: str = "JPEG", **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_args)
    return buffer.getvalue()


def make_image_folder(
    root: str | Path,
    counts: dict[str, int] | None = None,
    size: tuple[int, int] = (40, 30),
    fmt: str = "JPEG",
    extension: str | None = None,
    seed: int = 0,
) -> dict[str, list[str]]:
    """Writes `counts[class]` images per class as ROOT/<class>/<class>_<i>.<ext>; returns the image ids
    (relative paths) per class. `fmt` is a Pillow format; the extension defaults to .jpg or .png."""
    root = Path(root)
    counts = counts if counts is not None else {"a": 3, "b": 2}
    extension = extension or (".png" if fmt.upper() == "PNG" else ".jpg")
    ids: dict[str, list[str]] = {}
    for c_index, (class_name, n) in enumerate(sorted(counts.items())):
        (root / class_name).mkdir(parents=True, exist_ok=True)
        ids[class_name] = []
        for i in range(n):
            image_id = f"{class_name}/{class_name}_{i}{extension}"
            image = make_image(size, seed=seed * 100_003 + c_index * 1_009 + i)
            (root / image_id).write_bytes(encode(image, fmt))
            ids[class_name].append(image_id)
    return ids


def _png_chunk(chunk_type: bytes, payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + chunk_type + payload + zlib.crc32(chunk_type + payload).to_bytes(4, "big")


def png_with_header_size(width: int, height: int) -> bytes:
    """A small PNG whose IHDR claims width x height (how a decompression bomb looks from outside)."""
    data = encode(make_image((16, 16)), "PNG")
    ihdr_payload = width.to_bytes(4, "big") + height.to_bytes(4, "big") + data[24:29]
    return data[:8] + _png_chunk(b"IHDR", ihdr_payload) + data[33:]


def special_images() -> dict[str, bytes]:
    """Valid but unusual files that TensorFlow must decode too: {file name: bytes}."""
    rgb = make_image((48, 36), seed=7)
    return {
        "cmyk.jpg": encode(rgb.convert("CMYK"), "JPEG"),
        "grayscale.jpg": encode(rgb.convert("L"), "JPEG"),
        "progressive.jpeg": encode(rgb, "JPEG", progressive=True),
        "upper_case.JPG": encode(make_image((40, 30), seed=8), "JPEG"),
        "alpha.png": encode(rgb.convert("RGBA"), "PNG"),
        "palette.PNG": encode(rgb.convert("P"), "PNG"),
        "gray16.png": encode(
            Image.fromarray((np.arange(48 * 36).reshape(36, 48) * 37 % 65535).astype(np.uint16)), "PNG"
        ),
        "jpeg_named.png": encode(make_image((40, 30), seed=9), "JPEG"),  # content decides, not the name
    }


def damaged_scan_jpeg(jpeg: bytes, n_bytes: int = 20, seed: int = 0) -> bytes:
    """`jpeg` with `n_bytes` bytes of its scan data (the middle half, between the first start-of-scan
    segment and the end marker) overwritten with random values other than 0xFF, so no new marker
    appears: the header and the end marker stay intact, as in a photo damaged on a disk or in transit."""
    pos = 2
    while jpeg[pos + 1] != 0xDA:  # walk the segments to the start of scan
        pos += 2 + int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
    start, end = pos + 2 + int.from_bytes(jpeg[pos + 2 : pos + 4], "big"), len(jpeg) - 2
    rng, damaged = np.random.default_rng(seed), bytearray(jpeg)
    quarter = (end - start) // 4
    for i in rng.choice(np.arange(start + quarter, end - quarter), size=n_bytes, replace=False):
        damaged[i] = int(rng.integers(0, 255))
    return bytes(damaged)


def bad_files() -> dict[str, tuple[bytes, str]]:
    """{file name: (bytes, a phrase its rejection reason contains)}."""
    jpeg = encode(make_image((64, 48), seed=11), "JPEG")
    png = encode(make_image((64, 48), seed=12), "PNG")
    return {
        "empty.jpg": (b"", "empty file"),
        "text.jpg": (b"this is not an image, just text\n" * 4, "not an image"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
        "no_end_marker.jpg": (jpeg[:-2], "truncated"),
        "truncated.png": (png[: len(png) // 2], "truncated"),
        "no_iend.png": (png[:-12], "truncated PNG"),
        "damaged_scan.jpg": (
            damaged_scan_jpeg(encode(make_image((96, 64), seed=13), "JPEG")),
            "corrupt JPEG scan data",
        ),
        "huge.png": (png_with_header_size(100_000, 100_000), "absurd dimensions"),
        "sliver.png": (encode(make_image((20_000, 1)), "PNG"), "absurd dimensions"),
        "animation.png": (encode(make_image((32, 32)), "GIF"), "unsupported image format GIF"),
        "notes.txt": (b"some notes\n", "not an image file name"),
    }


def write_special_images(root: str | Path, class_name: str) -> list[str]:
    """Writes special_images() into ROOT/<class_name>/; returns their image ids."""
    folder = Path(root) / class_name
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in special_images().items():
        (folder / name).write_bytes(data)
    return sorted(f"{class_name}/{name}" for name in special_images())


def write_bad_files(root: str | Path, class_name: str = "a") -> dict[str, str]:
    """Writes bad_files() into ROOT/<class_name>/; returns {image_id: a phrase of its expected reason}."""
    folder = Path(root) / class_name
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name, (data, phrase) in bad_files().items():
        (folder / name).write_bytes(data)
        expected[f"{class_name}/{name}"] = phrase
    return expected


def copy_flowers_sample(dest: str | Path, per_class: int = 5) -> dict[str, list[str]]:
    """Copies the first `per_class` files (sorted) of each real flower class; returns the image ids."""
    ids: dict[str, list[str]] = {}
    for class_name in FLOWER_CLASSES:
        (Path(dest) / class_name).mkdir(parents=True, exist_ok=True)
        names = sorted(p.name for p in (FLOWERS / class_name).iterdir())[:per_class]
        for name in names:
            shutil.copyfile(FLOWERS / class_name / name, Path(dest) / class_name / name)
        ids[class_name] = [f"{class_name}/{n}" for n in names]
    return ids


def prepare_local_tf_flowers(folder: str | Path, data_dir: str | Path) -> Path:
    """Prepares TFDS's own `tf_flowers` builder into `data_dir` from a local folder of class folders (the
    download is replaced by a .tgz of the folder; TFDS keeps only `*.jpg` files of the five flower classes),
    so `tfds.load("tf_flowers", data_dir=data_dir)` works offline. Returns the prepared dataset folder."""
    import tarfile

    import tensorflow_datasets as tfds
    from tensorflow_datasets.datasets.tf_flowers.tf_flowers_dataset_builder import Builder

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    archive = data_dir / "flower_photos.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="flower_photos")

    class LocalTfFlowers(Builder, skip_registration=True):
        name = "tf_flowers"
        pkg_dir_path = Builder._get_pkg_dir_path()  # the real builder's metadata

        def _split_generators(self, dl_manager):
            return [
                tfds.core.SplitGenerator(
                    name=tfds.Split.TRAIN, gen_kwargs={"images_dir_path": dl_manager.iter_archive(str(archive))}
                )
            ]

    tfds.disable_progress_bar()
    builder = LocalTfFlowers(data_dir=str(data_dir))
    builder.download_and_prepare(download_dir=str(data_dir / "downloads"))
    archive.unlink()
    return Path(builder.data_dir)


# Running an ExampleGen executor directly (no orchestrator): seconds instead of a LocalDagRunner run.
# `--setup_file` as pipeline/local_runner.py gives it: without a dependency flag, TFX builds an sdist of
# itself (2-3 s, 49 MB left in the temporary folder) at every Beam executor it starts.
IN_MEMORY = [
    "--runner=FnApiRunner",
    "--direct_running_mode=in_memory",
    "--direct_num_workers=1",
    f"--setup_file={Path(__file__).resolve().parents[2] / 'setup.py'}",
]


def curated_schema(*class_names: str) -> str:
    """A curated schema (tensorflow_metadata Schema, text format, for `--schema`) of the ExampleGen's four
    features, every one required, whose `class_name` may take only `class_names`."""
    values = " ".join(f'value: "{name}"' for name in class_names)
    return f"""
feature {{ name: "image" type: BYTES presence {{ min_fraction: 1.0 min_count: 1 }} shape {{ dim {{ size: 1 }} }} }}
feature {{ name: "label" type: INT presence {{ min_fraction: 1.0 min_count: 1 }} shape {{ dim {{ size: 1 }} }} }}
feature {{ name: "image_id" type: BYTES presence {{ min_fraction: 1.0 min_count: 1 }} shape {{ dim {{ size: 1 }} }} }}
feature {{
  name: "class_name" type: BYTES domain: "class_name"
  presence {{ min_fraction: 1.0 min_count: 1 }} shape {{ dim {{ size: 1 }} }}
}}
string_domain {{ name: "class_name" {values} }}
"""


def exec_properties(component) -> dict:
    """What the orchestrator hands the executor: proto properties as JSON strings."""
    from google.protobuf import message
    from tfx.utils import proto_utils

    return {
        k: proto_utils.proto_to_json(v) if isinstance(v, message.Message) else v
        for k, v in component.exec_properties.items()
    }


def run_executor(component, out: str | Path, beam_args: list[str] = IN_MEMORY):
    """Runs `component`'s executor (e.g. `image_example_gen(folder)`) into `out`; returns the Examples
    artifact (`.uri` is `out`, with Split-train/ and Split-eval/ and ingestion_report.json)."""
    from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor
    from tfx.types import standard_artifacts

    examples = standard_artifacts.Examples()
    examples.uri = str(out)
    executor = component.executor_spec.executor_class(BaseBeamExecutor.Context(beam_pipeline_args=beam_args))
    executor.Do({}, {"examples": [examples]}, exec_properties(component))
    return examples


def read_split(examples_uri: str | Path, split: str) -> list[dict]:
    """The examples of one split as dicts: image_id, class_name (str), label (int), image (bytes)."""
    import tensorflow as tf

    files = sorted(str(p) for p in Path(examples_uri, f"Split-{split}").glob("*.gz"))
    rows = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator():
        f = tf.train.Example.FromString(record).features.feature
        assert sorted(f) == ["class_name", "image", "image_id", "label"]
        rows.append(
            {
                "image_id": f["image_id"].bytes_list.value[0].decode(),
                "class_name": f["class_name"].bytes_list.value[0].decode(),
                "label": f["label"].int64_list.value[0],
                "image": f["image"].bytes_list.value[0],
            }
        )
    return rows
