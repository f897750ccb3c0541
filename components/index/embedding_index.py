"""EmbeddingIndexer: embeds every example of the ExampleGen splits with the serving model -> `index.npz`.

A Python-function TFX component. It loads the trained serving SavedModel (the linear-probe Trainer's
`model` output, the very model the Pusher copies), streams the ExampleGen's tf.Examples batch by batch
through `embed_images` (the same client code as `simsiam-tfx embed`), and writes one artifact file,
`<uri>/index.npz` (format: serving/index.py) with `paths` = image_id, `embeddings`,
`labels`, `class_names`, `splits`, 64-px `thumbnails` (so `search --plot` works without the data
folder, e.g. for TFDS data), and the model's fingerprint. `simsiam-tfx search --index` reads it.
It also writes `<uri>/projector/`, the same embeddings in TensorBoard's projector format with the
thumbnails as a sprite (components/index/projector.py): `tensorboard --logdir OUT` shows them.

No `from __future__ import annotations` here: TFX reads the component's type hints as objects.
"""

import json
import os
import tempfile
from collections.abc import Iterator

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types import artifact, artifact_utils, standard_artifacts

from components import features as F
from components.index.projector import PROJECTOR_DIR, write_projector

REPORT_FILE = "index_report.json"


def index_file(artifact_uri: str | None) -> str | None:
    """`<artifact uri>/index.npz`, or None without an artifact (for summaries: `output_uri(...)` may be None)."""
    return f"{artifact_uri.rstrip('/')}/{F.INDEX_FILE}" if artifact_uri else None


class EmbeddingIndexArtifact(artifact.Artifact):
    """A folder with `index.npz` (and `index_report.json`)."""

    TYPE_NAME = "simsiam.EmbeddingIndex"  # "<namespace>.<Name>": what Kubeflow V2 compiles custom types to


def _thumbnail(data: bytes, size: int):
    import io

    import numpy as np
    from PIL import Image, ImageOps

    from serving.images import displayed_rgb

    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much faster
        # As the model sees it: EXIF orientation applied, transparency on white (serving/images.py).
        return np.asarray(ImageOps.fit(displayed_rgb(image), (size, size)), dtype=np.uint8)


def read_examples(split_uri: str, batch_size: int) -> Iterator[list]:
    """Batches of tf.train.Example from the (GZIP) TFRecord files of one split folder."""
    import tensorflow as tf

    files = sorted(tf.io.gfile.glob(f"{split_uri.rstrip('/')}/*"))
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(batch_size)
    for records in dataset.as_numpy_iterator():
        yield [tf.train.Example.FromString(r) for r in records]


def example_feature(example, name: str):
    feature = example.features.feature[name]
    return (feature.bytes_list.value or feature.int64_list.value or [None])[0]


def build_index(serving_model_dir: str, examples_uri: str, split_uris: dict[str, str], batch_size: int = 64,
                thumbnail_size: int = 64):
    """(EmbeddingIndex of every example of `split_uris` {split: folder}, report dict)."""
    import numpy as np

    from components.ingest.report import load_class_names
    from serving import EmbeddingClient
    from serving.backends import LocalBackend
    from serving.index import EmbeddingIndex

    backend = LocalBackend(serving_model_dir)
    client = EmbeddingClient(backend, batch_size=batch_size, validate=False)  # ExampleGen validated them
    paths, labels, splits, embeddings, thumbnails, failed = [], [], [], [], [], []
    names_seen: dict[int, str] = {}
    for split, uri in split_uris.items():
        for batch in read_examples(uri, batch_size):
            images = [example_feature(e, F.IMAGE) for e in batch]
            result = client.embed(images)
            failed.extend({"path": example_feature(batch[i], F.IMAGE_ID).decode(), "reason": r}
                          for i, r in result.failed)
            for row in result.indices:
                example = batch[row]
                paths.append(example_feature(example, F.IMAGE_ID).decode())
                label = example_feature(example, F.LABEL)
                labels.append(-1 if label is None else int(label))
                if label is not None and example_feature(example, F.CLASS_NAME) is not None:
                    names_seen[int(label)] = example_feature(example, F.CLASS_NAME).decode()
                splits.append(split)
                if thumbnail_size:
                    thumbnails.append(_thumbnail(images[row], thumbnail_size))
            if result.indices:
                embeddings.append(result["embedding"])
    try:
        class_names = load_class_names(examples_uri)
    except (OSError, KeyError, ValueError):  # no ingestion report: the names the examples carry
        class_names = [names_seen.get(i, str(i)) for i in range(max(names_seen, default=-1) + 1)]
    if not embeddings:
        raise ValueError(f"no example of {sorted(split_uris)} could be embedded ({len(failed)} rejected)")
    index = EmbeddingIndex(
        paths=np.array(paths), embeddings=np.concatenate(embeddings).astype(np.float32),
        labels=np.array(labels, dtype=np.int64), class_names=np.array(class_names), splits=np.array(splits),
        thumbnails=np.stack(thumbnails) if thumbnails else None,
        model=serving_model_dir, model_fingerprint=backend.fingerprint(),
    )
    counts = {s: int(np.sum(index.splits == s)) for s in split_uris}
    return index, {"counts": counts, "dimension": int(index.embeddings.shape[1]), "failed": failed}


@component
def EmbeddingIndexer(  # noqa: N802 - TFX component names are class-like
    model: InputArtifact[standard_artifacts.Model],
    examples: InputArtifact[standard_artifacts.Examples],
    embedding_index: OutputArtifact[EmbeddingIndexArtifact],
    splits: Parameter[str] = "",
    batch_size: Parameter[int] = 64,
    thumbnail_size: Parameter[int] = 64,
) -> None:
    """Embeds the examples of `splits` (comma-separated; empty: every split of `examples`)."""
    from tfx.utils import path_utils

    available = artifact_utils.decode_split_names(examples.split_names)
    wanted = [s.strip() for s in splits.split(",") if s.strip()] or available
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        raise ValueError(f"splits {unknown} are not in the examples (they have {available})")
    split_uris = {s: artifact_utils.get_split_uri([examples], s) for s in wanted}
    index, report = build_index(path_utils.serving_model_path(model.uri), examples.uri, split_uris,
                                batch_size, thumbnail_size)
    path = index_file(embedding_index.uri)
    with tempfile.TemporaryDirectory() as tmp:  # written locally, then copied: the uri may be gs://...
        index.save(os.path.join(tmp, F.INDEX_FILE))
        with open(os.path.join(tmp, REPORT_FILE), "w") as f:
            json.dump(report, f, indent=1)
        projector = os.path.join(tmp, PROJECTOR_DIR)
        write_projector(projector, index.embeddings, index.labels, list(index.class_names), index.paths,
                        index.splits, index.thumbnails)
        fileio.makedirs(embedding_index.uri)
        for name in (F.INDEX_FILE, REPORT_FILE):
            fileio.copy(os.path.join(tmp, name), f"{embedding_index.uri.rstrip('/')}/{name}", overwrite=True)
        fileio.makedirs(f"{embedding_index.uri.rstrip('/')}/{PROJECTOR_DIR}")
        for name in sorted(os.listdir(projector)):
            fileio.copy(os.path.join(projector, name), f"{embedding_index.uri.rstrip('/')}/{PROJECTOR_DIR}/{name}",
                        overwrite=True)
    embedding_index.set_string_custom_property("index_path", path)
    embedding_index.set_int_custom_property("num_embeddings", len(index))
    embedding_index.set_int_custom_property("num_failed", len(report["failed"]))
    embedding_index.set_string_custom_property("projector_dir", f"{embedding_index.uri.rstrip('/')}/{PROJECTOR_DIR}")
    print(f"[EmbeddingIndexer] {len(index)} embeddings {report['counts']} -> {path}; "
          f"{len(report['failed'])} rejected", flush=True)
