"""TFDS image-classification datasets (`tf_flowers` by default) as the records the folder source gives.

For users who are online: the dataset is downloaded and prepared by TFDS on first use. Records are
(image_id, class_name, encoded bytes): the bytes as TFDS stored them (the original JPEG files for
tf_flowers, read with `SkipDecoding`), the class name from the dataset's ClassLabel, and, since TFDS keeps
no file names, `image_id = "<class>/<sha256 of the bytes, 16 hex>.<jpg|png>"`: stable across machines,
TFDS versions and shard layouts, so the hash split is too. Labels are re-indexed to the sorted class
names, as for a folder (TFDS orders tf_flowers' names as dandelion, daisy, tulips, sunflowers, roses).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from components.ingest.files import DataError

DEFAULT_TFDS_NAME = "tf_flowers"


@dataclass(frozen=True)
class TfdsImageDataset:
    name: str
    image_key: str
    label_key: str
    label_names: tuple[str, ...]  # in TFDS label order
    splits: tuple[str, ...]

    @property
    def classes(self) -> tuple[str, ...]:
        """In our label order: sorted, as for a folder of class folders."""
        return tuple(sorted(self.label_names))


def _builder(name: str, data_dir: str | None):
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name, data_dir=data_dir)
    except Exception as err:  # DatasetNotFoundError and friends
        raise DataError(f"unknown TFDS dataset {name!r}: {err}") from err


def describe(builder) -> TfdsImageDataset:
    """The image and label features of an image-classification dataset (from its supervised keys)."""
    import tensorflow_datasets as tfds

    info = builder.info
    keys = info.supervised_keys
    if not keys or len(keys) != 2:
        raise DataError(f"TFDS dataset {info.name!r} has no (image, label) supervised keys")
    image_key, label_key = keys
    if not isinstance(info.features[image_key], tfds.features.Image) or not isinstance(
        info.features[label_key], tfds.features.ClassLabel
    ):
        raise DataError(f"TFDS dataset {info.name!r} is not image classification ({image_key}, {label_key})")
    return TfdsImageDataset(
        name=info.name,
        image_key=image_key,
        label_key=label_key,
        label_names=tuple(info.features[label_key].names),
        splits=tuple(sorted(info.splits)),
    )


def prepare_tfds(name: str = DEFAULT_TFDS_NAME, data_dir: str | None = None) -> TfdsImageDataset:
    """Downloads and prepares the dataset unless `data_dir` already holds it."""
    builder = _builder(name, data_dir)
    if not builder.is_prepared():
        try:
            builder.download_and_prepare()
        except Exception as err:
            raise DataError(
                f"could not download and prepare TFDS dataset {name!r} into {builder.data_dir} ({err}); "
                "downloads need internet access, or use --data-dir with a local folder of class folders"
            ) from err
    return describe(builder)


def image_id_for(class_name: str, data: bytes) -> str:
    extension = ".png" if data[:4] == b"\x89PNG" else ".jpg" if data[:2] == b"\xff\xd8" else ".img"
    return f"{class_name}/{hashlib.sha256(data).hexdigest()[:16]}{extension}"


def iter_tfds_images(name: str = DEFAULT_TFDS_NAME, data_dir: str | None = None) -> Iterator[tuple[str, str, bytes]]:
    """(image_id, class_name, encoded bytes) of every example of every split, in TFDS' stored order."""
    import tensorflow_datasets as tfds

    builder = _builder(name, data_dir)
    dataset = describe(builder)
    ds = builder.as_dataset(
        split="+".join(dataset.splits),
        decoders={dataset.image_key: tfds.decode.SkipDecoding()},
        shuffle_files=False,
    )
    for example in ds.as_numpy_iterator():
        data = bytes(example[dataset.image_key])
        class_name = dataset.label_names[int(example[dataset.label_key])]
        yield image_id_for(class_name, data), class_name, data
