"""EmbeddingIndexer: embeds every example of the ExampleGen splits with the serving model, indexes and gates them.

A Python-function TFX component. It loads the trained serving SavedModel (the linear-probe Trainer's
`model` output, the very model the Pusher copies), streams the ExampleGen's tf.Examples batch by batch
through `embed_images` (the same client code as `simsiam-tfx embed`), and writes into its artifact:
- `index.npz` (format: serving/index.py): the row table, `paths` = image_id, each embedding's
  `norms` (the vectors themselves are in `index.faiss` only), `labels`, `class_names`, `splits`, 64-px
  `thumbnails` for the hash sample of at most `max_thumbnails` image ids
  (components/examples.py: the same photos in every run, the sample the report draws from; so
  `search --plot` and the report's neighbour grid work without the data folder, e.g. for TFDS data;
  12 KB a row would be 12 GB at a million images), and the model's fingerprint;
- `index.faiss` + `index_meta.json` (serving/ann.py): the nearest-neighbour index over those rows,
  exact up to `exact_max_rows` rows, IVF above; it holds the unit rows, which `EmbeddingIndex.load`
  reads back (times the norms), so the artifact stores the vectors once;
- `index_report.json`: counts, rejected images and the gate's figures (`serving.ann.measure_index`:
  recall@10 against exact search on a seeded sample of rows, latency, queries/s, threads). The step
  fails, its error giving those figures, when recall@10 < `min_recall`, so a broken index is never
  used (TFX removes a failed step's outputs, so the message is where they survive);
- `projector/`: a seeded sample of at most `projector_rows` embeddings (among the thumbnail sample's
  rows) in TensorBoard's projector format with their thumbnails as a sprite
  (components/index/projector.py): `tensorboard --logdir OUT` shows them.
`simsiam-tfx search --index` reads the artifact.

No `from __future__ import annotations` here: TFX reads the component's type hints as objects.
"""

import json
import os
import tempfile
import time

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types import artifact, artifact_utils, standard_artifacts

from components import features as F
from components.examples import DEFAULT_SAMPLE_SIZE, artifact_reader
from components.index.projector import PROJECTOR_DIR


def index_file(artifact_uri: str | None) -> str | None:
    """`<artifact uri>/index.npz`, or None without an artifact (for summaries: `output_uri(...)` may be None)."""
    return f"{artifact_uri.rstrip('/')}/{F.INDEX_FILE}" if artifact_uri else None


class EmbeddingIndexArtifact(artifact.Artifact):
    """A folder with `index.npz`, `index.faiss`, `index_meta.json` (and `index_report.json`)."""

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


def build_index(
    serving_model_dir: str,
    examples_uri: str,
    split_uris: dict[str, str],
    batch_size: int = 64,
    thumbnail_size: int = 64,
    max_thumbnails: int = DEFAULT_SAMPLE_SIZE,
    dataset_factory=None,
):
    """(EmbeddingIndex of every example of `split_uris` {split: folder}, report dict).

    The raw examples stream through the one reader (components/examples.py; `dataset_factory`: the
    artifact's TFXIO factory, default the tf.Example reader) and the serving model, batch by batch:
    memory holds the embeddings. Thumbnails (12 KB each at 64 px) only for the hash sample of at most
    `max_thumbnails` image ids (all of them when fewer), the sample the report draws from."""
    import numpy as np

    from components import examples
    from components.ingest.ingestion_record import load_class_names
    from serving import EmbeddingClient
    from serving.backends import LocalBackend
    from serving.index import EmbeddingIndex

    read = dataset_factory or examples.tf_example_reader()
    schema = examples.feature_schema(examples.RAW_FEATURES)
    backend = LocalBackend(serving_model_dir)
    client = EmbeddingClient(backend, batch_size=batch_size, validate=False)  # ExampleGen validated them
    paths, labels, splits, embeddings, failed = [], [], [], [], []
    sample = examples.HashSample(max_thumbnails) if thumbnail_size and max_thumbnails else None
    names_seen: dict[int, str] = {}
    for split, uri in split_uris.items():
        for batch in examples.numpy_batches(read, f"{uri.rstrip('/')}/*", schema, batch_size):
            images, ids = list(batch[F.IMAGE]), [v.decode() for v in batch[F.IMAGE_ID]]
            result = client.embed(images)
            failed.extend({"path": ids[i], "reason": r} for i, r in result.failed)
            for row in result.indices:
                label = int(batch[F.LABEL][row])
                paths.append(ids[row])
                labels.append(label)
                if label >= 0:
                    names_seen[label] = batch[F.CLASS_NAME][row].decode()
                splits.append(split)
                if sample is not None:
                    n, data = len(paths) - 1, images[row]
                    sample.offer(ids[row], lambda n=n, data=data: (n, _thumbnail(data, thumbnail_size)))
            if result.indices:
                embeddings.append(result["embedding"])
    try:
        class_names = load_class_names(examples_uri)
    except (OSError, KeyError, ValueError):  # no ingestion report: the names the examples carry
        class_names = [names_seen.get(i, str(i)) for i in range(max(names_seen, default=-1) + 1)]
    if not embeddings:
        raise ValueError(f"no example of {sorted(split_uris)} could be embedded ({len(failed)} rejected)")
    thumbnails = thumbnail_rows = None
    kept = sorted(sample.items(), key=lambda item: item[0]) if sample is not None else []  # (row, thumbnail)
    if kept:
        thumbnails = np.stack([thumbnail for _, thumbnail in kept])
        if len(kept) < len(paths):
            thumbnail_rows = np.asarray([row for row, _ in kept], np.int64)
    index = EmbeddingIndex(
        paths=np.array(paths),
        embeddings=np.concatenate(embeddings).astype(np.float32),
        labels=np.array(labels, dtype=np.int64),
        class_names=np.array(class_names),
        splits=np.array(splits),
        thumbnails=thumbnails,
        thumbnail_rows=thumbnail_rows,
        model=serving_model_dir,
        model_fingerprint=backend.fingerprint(),
    )
    counts = {s: int(np.sum(index.splits == s)) for s in split_uris}
    return index, {"counts": counts, "dimension": int(index.embeddings.shape[1]), "failed": failed}


def _projector_rows(n: int, limit: int, seed: int = 0):
    """Sorted row numbers of a seeded sample of at most `limit` of `n` rows (all when n <= limit)."""
    import numpy as np

    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def _write_local(tmp: str, index, ann_index, report: dict, projector_rows: int) -> list[str]:
    """Writes the artifact's files into local folder `tmp`; returns their names (projector/ included)."""
    import numpy as np

    from components.index.projector import write_projector

    index.save(os.path.join(tmp, F.INDEX_FILE), vectors_in_faiss=True)  # index.faiss is the one copy
    ann_index.save(tmp)
    with open(os.path.join(tmp, F.INDEX_REPORT_FILE), "w") as f:
        json.dump(report, f, indent=1)
    if index.thumbnail_rows is None:  # every row has its thumbnail (or none has)
        rows = _projector_rows(len(index), projector_rows)
    else:  # the rows of the thumbnail sample, so that the sprite shows each point
        rows = index.thumbnail_rows[_projector_rows(len(index.thumbnail_rows), projector_rows)]
    thumbnails = None if index.thumbnails is None else np.stack([index.thumbnail(r) for r in rows])
    write_projector(
        os.path.join(tmp, PROJECTOR_DIR),
        index.embeddings[rows],
        index.labels[rows],
        list(index.class_names),
        index.paths[rows],
        None if index.splits is None else index.splits[rows],
        thumbnails,
    )
    return sorted(os.listdir(tmp))


def _copy_tree(local: str, uri: str) -> None:
    """Copies local folder `local` and its sub-folders to `uri` (may be gs://...)."""
    fileio.makedirs(uri)
    for name in sorted(os.listdir(local)):
        source, target = os.path.join(local, name), f"{uri.rstrip('/')}/{name}"
        if os.path.isdir(source):
            _copy_tree(source, target)
        else:
            fileio.copy(source, target, overwrite=True)


@component
def EmbeddingIndexer(  # noqa: N802 - TFX component names are class-like
    model: InputArtifact[standard_artifacts.Model],
    examples: InputArtifact[standard_artifacts.Examples],
    embedding_index: OutputArtifact[EmbeddingIndexArtifact],
    splits: Parameter[str] = "",
    batch_size: Parameter[int] = 64,
    thumbnail_size: Parameter[int] = 64,
    exact_max_rows: Parameter[int] = 100_000,
    min_recall: Parameter[float] = 0.95,
    gate_queries: Parameter[int] = 1000,
    projector_rows: Parameter[int] = 10_000,
    max_thumbnails: Parameter[int] = DEFAULT_SAMPLE_SIZE,
) -> None:
    """Embeds the examples of `splits` (comma-separated; empty: every split of `examples`), indexes them
    (exact up to `exact_max_rows` rows) and fails when recall@10 on `gate_queries` rows < `min_recall`."""
    from tfx.utils import path_utils

    from serving import ann

    available = artifact_utils.decode_split_names(examples.split_names)
    wanted = [s.strip() for s in splits.split(",") if s.strip()] or available
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        raise ValueError(f"splits {unknown} are not in the examples (they have {available})")
    split_uris = {s: artifact_utils.get_split_uri([examples], s) for s in wanted}
    index, report = build_index(
        path_utils.serving_model_path(model.uri), examples.uri, split_uris, batch_size, thumbnail_size, max_thumbnails,
        dataset_factory=artifact_reader(examples),
    )  # fmt: skip
    start = time.perf_counter()
    ann_index = ann.build_index(
        index.embeddings, exact_max_rows=exact_max_rows, model_fingerprint=index.model_fingerprint
    )
    report["build_seconds"] = round(time.perf_counter() - start, 3)
    report["gate"] = ann.gate_result(ann.measure_index(ann_index, index.embeddings, gate_queries), min_recall)
    ann.check_recall(report["gate"])  # TFX removes a failed step's outputs: the error carries the figures
    with tempfile.TemporaryDirectory() as tmp:  # written locally, then copied: the uri may be gs://...
        _write_local(tmp, index, ann_index, report, projector_rows)
        _copy_tree(tmp, embedding_index.uri)
    path = index_file(embedding_index.uri)
    embedding_index.set_string_custom_property("index_path", path)
    embedding_index.set_int_custom_property("num_embeddings", len(index))
    embedding_index.set_int_custom_property("num_failed", len(report["failed"]))
    embedding_index.set_string_custom_property("index_kind", ann_index.meta.kind)
    if report["gate"]["recall_at_10"] is not None:
        embedding_index.set_float_custom_property("recall_at_10", report["gate"]["recall_at_10"])
    embedding_index.set_string_custom_property("projector_dir", f"{embedding_index.uri.rstrip('/')}/{PROJECTOR_DIR}")
    print(
        f"[EmbeddingIndexer] {len(index)} embeddings {report['counts']} -> {path}; "
        f"{len(report['failed'])} rejected; {ann_index.meta.kind} index, recall@10 "
        f"{report['gate']['recall_at_10']}",
        flush=True,
    )
