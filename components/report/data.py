"""The data of the run report, gathered from a run's artifacts, and the figures drawn from it.

Shared by the RunReport step (components/report/component.py) and `simsiam-tfx report` (a report for
a run made before that step existed). `build_report` returns the page and its data: a JSON-able dict
that the step also writes as `report.json`, and that `OUT/summary.json` extends with timings.
"""

import os
import tempfile
from typing import Any

import numpy as np
from tfx.dsl.io import fileio

from components import features as F
from components.evaluate.baseline_gate import read_decision
from components.evaluate.tfma_results import evaluation_metrics, gate_result
from components.index.embedding_index import index_file
from components.json_files import read_json
from components.report import DEFAULT_QUERIES_PER_CLASS
from serving.ann import ANN_FILE, META_FILE

NEIGHBOURS = 5  # neighbours shown per query


def label_free_result(evaluation_uri: str | None) -> dict[str, Any]:
    """The LabelFreeEvaluator's `label_free_metrics.json` in `evaluation_uri`, or {} (a TFMA evaluation)."""
    return read_json(f"{evaluation_uri.rstrip('/')}/{F.LABEL_FREE_METRICS_FILE}" if evaluation_uri else None)


def select_queries(labels: np.ndarray, image_ids: np.ndarray, candidates: np.ndarray, per_class: int) -> np.ndarray:
    """Rows of `candidates` (int [M]) making a class-balanced query set: the first `per_class` of each class
    by image id, so the same photos are queried in every run over the same data."""
    chosen = []
    for label in sorted(set(labels[candidates].tolist())):
        rows = candidates[labels[candidates] == label]
        chosen.extend(rows[np.argsort(image_ids[rows], kind="stable")][:per_class].tolist())
    return np.array(chosen, dtype=np.int64)


def nearest(embeddings: np.ndarray, queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of `base` most cosine-similar to each row of `queries` (rows of float [N, D] `embeddings`)
    -> (rows int [Q, k], similarities float [Q, k]), most similar first."""
    x = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    sims = x[queries] @ x[base].T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return base[order], np.take_along_axis(sims, order, axis=1)


def random_init_embeddings(
    simsiam_config: dict[str, Any],
    recipe: dict[str, Any],
    transform_uri: str,
    images: list[bytes],
    batch_size: int = 64,
) -> np.ndarray:
    """float32 [N, D] embeddings of encoded `images` by the encoder at its random initialisation.

    The SimSiam Trainer's recipe: `keras.utils.set_random_seed(seed)`, then `build_simsiam(config, mean, std)`
    gives the very weights it started from (and measured `random_init_knn_accuracy` with); images go
    through the Transform graph to the stored images, then `models.monitors.embed` (`eval_view`, the
    encoder), as in the serving model (components/export/serving_model.py)."""
    import tensorflow as tf
    import tensorflow_transform as tft

    from components.evaluate.label_free import random_init_encoder
    from models.config import SimSiamConfig
    from models.monitors import embed

    stored = SimSiamConfig.from_dict(simsiam_config).stored_size
    tft_layer = tft.TFTransformOutput(transform_uri).transform_features_layer()

    @tf.function
    def decode(batch: tf.Tensor) -> tf.Tensor:
        transformed = tft_layer({F.IMAGE: tf.reshape(batch, [-1, 1])})
        return tf.map_fn(
            lambda s: tf.ensure_shape(tf.io.parse_tensor(s, tf.uint8), [stored, stored, 3]),
            tf.reshape(transformed[F.IMAGE_U8], [-1]),
            fn_output_signature=tf.TensorSpec([stored, stored, 3], tf.uint8),
        )

    # The images are the report's bounded sample: decoded batch by batch, embedded in one call.
    stored_images = np.concatenate(
        [decode(tf.constant(images[i : i + batch_size])).numpy() for i in range(0, len(images), batch_size)]
    )
    return embed(random_init_encoder(simsiam_config, recipe), stored_images, batch_size=batch_size)


def _images_of(ids: set[str], examples_uri: str, split_names: list[str]) -> dict[str, bytes]:
    """{image_id: encoded image} of the examples whose id is in `ids`, streamed through the one reader
    (components/examples.py) from TFX's split folders `<examples uri>/Split-<name>`: memory holds the
    chosen images only."""
    from components import examples

    read, schema = examples.tf_example_reader(), examples.feature_schema({F.IMAGE: "string", F.IMAGE_ID: "string"})
    patterns = [f"{examples_uri.rstrip('/')}/Split-{s}/*" for s in split_names]
    images = {}
    for batch in examples.numpy_batches(read, patterns, schema):
        for image_id, image in zip(batch[F.IMAGE_ID], batch[F.IMAGE]):
            if image_id.decode() in ids:
                images[image_id.decode()] = bytes(image)
    return images


def figure_sample(index):
    """The rows the report looks at: the index's thumbnail sample (the hash sample of at most
    `sample_size` image ids, components/examples.py), or every row when all have thumbnails."""
    if index.thumbnail_rows is None:
        return index
    keep = np.zeros(len(index), bool)
    keep[index.thumbnail_rows] = True
    return index.select(keep)


class _Thumbnails:
    """`thumbnails[row]` for `plot_neighbour_grids`: the index's thumbnail of `row`, or a grey tile for a
    row outside its thumbnail sample (EmbeddingIndexer `max_thumbnails`)."""

    def __init__(self, index):
        self.index, self.grey = index, np.full(index.thumbnails.shape[1:], 200, np.uint8)

    def __getitem__(self, row: int) -> np.ndarray:
        thumbnail = self.index.thumbnail(row)
        return self.grey if thumbnail is None else thumbnail


def draw_figures(
    index,
    random_emb: np.ndarray,
    history: dict[str, list],
    knn_lines: list[tuple[str, float | None]],
    queries_per_class: int,
    folder: str,
) -> tuple[dict[str, str], dict[str, int]]:
    """The report's PNGs in `folder` ({name: path}) and what they show that their captions count
    ({"neighbour_queries", "queries_per_class"}: components/report/html.py `figure_captions`).
    `knn_lines`: the kNN curve's reference lines."""
    from components.report.figures import plot_embedding_maps, plot_neighbour_grids, plot_training_curves

    names = list(index.class_names)
    splits = index.splits if index.splits is not None else np.full(len(index), "train")
    labeled = index.labels >= 0
    if labeled.any():  # neighbours among labelled images, so green/red says something
        train, evaluation = np.flatnonzero(splits == "train"), np.flatnonzero(splits == "eval")
    else:
        train, evaluation = (np.flatnonzero(np.char.endswith(splits.astype(str), s)) for s in ("train", "eval"))
    figures: dict[str, str] = {}
    shown: dict[str, int] = {}
    if history:
        figures["curves"] = str(
            plot_training_curves(
                history,
                os.path.join(folder, "training_curves.png"),
                title="SimSiam pre-training",
                references={"knn_accuracy": knn_lines},
            )
        )
    if len(evaluation) >= 4:
        figures["map"] = str(
            plot_embedding_maps(
                [
                    ("trained encoder (t-SNE)", index.embeddings[evaluation]),
                    ("random-init encoder (t-SNE)", random_emb[evaluation]),
                ],
                index.labels[evaluation],
                names,
                os.path.join(folder, "embedding_map_tsne.png"),
            )
        )
    if len(evaluation) and len(train) and index.thumbnails is not None:
        # Without labels there are no classes to balance: the first eval images by id, as many as 5 classes give.
        queries = (
            select_queries(index.labels, index.paths, evaluation, queries_per_class)
            if labeled.any()
            else evaluation[np.argsort(index.paths[evaluation], kind="stable")][: 5 * queries_per_class]
        )
        k = min(NEIGHBOURS, len(train))
        panels = [
            (title, *nearest(emb, queries, train, k))
            for title, emb in (("trained encoder", index.embeddings), ("random-init encoder", random_emb))
        ]
        figures["neighbours"] = str(
            plot_neighbour_grids(
                panels,
                queries,
                _Thumbnails(index),
                index.labels,
                names,
                os.path.join(folder, "neighbour_grid.jpg"),
                image_ids=[str(p) for p in index.paths],
            )
        )
        shown = {"neighbour_queries": len(queries), "queries_per_class": queries_per_class}
    return figures, shown


def build_report(
    uris: dict[str, str],
    split_names: list[str],
    status: dict[str, Any],
    simsiam_config: dict[str, Any],
    accuracy_floor: float,
    queries_per_class: int = DEFAULT_QUERIES_PER_CLASS,
    figures_dir: str | None = None,
    profile: str = "",
) -> tuple[str, dict]:
    """(report page, its data) from a run's artifacts.

    `uris`: the artifact URIs {"examples", "transform_graph", "simsiam_model", "simsiam_run", "probe_run",
    "evaluation", "embedding_index"}; `status`: {"blessed", "pushed", "serving_model_dir", "projector_dir"}
    (artifact properties); the figures are kept in `figures_dir` when given (a local path or a bucket URI:
    they are drawn in a temporary folder and copied), and `data["figures"]` names them there; `uris`
    may hold "anomalies" (the ExampleValidator's). `profile`: the run's profile name, shown with its
    recipe. Shared by the RunReport step and `simsiam-tfx report` (a report for a run made before this
    step existed)."""
    from tfx.utils import path_utils

    from components.ingest.anomalies import read_anomalies
    from components.report.html import baseline_scores, knn_references, render_report
    from components.train.encoder_io import ENCODER_RECIPE
    from models.evaluation import knn_accuracy
    from serving.index import EmbeddingIndex

    index_path = index_file(uris["embedding_index"])
    with tempfile.TemporaryDirectory() as tmp:
        local_index = os.path.join(tmp, F.INDEX_FILE)
        fileio.copy(index_path, local_index)
        for name in (ANN_FILE, META_FILE):  # the vectors live in the faiss index (serving/index.py)
            source = f"{uris['embedding_index'].rstrip('/')}/{name}"
            if fileio.exists(source):
                fileio.copy(source, os.path.join(tmp, name))
        full_index = EmbeddingIndex.load(local_index)
    index = figure_sample(full_index)  # bounded: the maps, grids and kNN below look at this sample
    images = _images_of({str(p) for p in index.paths}, uris["examples"], split_names)
    recipe = read_json(os.path.join(path_utils.serving_model_path(uris["simsiam_model"]), ENCODER_RECIPE))
    random_emb = random_init_embeddings(
        simsiam_config, recipe, uris["transform_graph"], [images[str(p)] for p in index.paths]
    )
    monitor = read_json(os.path.join(uris["simsiam_run"], F.MONITOR_HISTORY_FILE))
    splits = index.splits if index.splits is not None else np.full(len(index), "train")
    train, ev = splits == "train", splits == "eval"  # the labelled splits
    recomputed = (
        knn_accuracy(random_emb[train], index.labels[train], random_emb[ev], index.labels[ev])
        if train.any() and ev.any()
        else None
    )
    label_free = label_free_result(uris["evaluation"])
    if label_free:  # no labels: the LabelFreeEvaluator's decision, no TFMA result
        gate = {
            "label_free": True,
            "validation_ok": bool(label_free.get("blessed")),
            "failures": list(label_free.get("reasons", [])),
        }
    else:
        gate = {
            "accuracy_floor": accuracy_floor,
            **gate_result(uris["evaluation"]),
            "baseline_gate": read_decision(uris.get("blessing")),
        }
    data = {
        "blessed": bool(status.get("blessed")),
        "pushed": bool(status.get("pushed")),
        "serving_model_dir": status.get("serving_model_dir") or None,
        "gate": gate,
        "label_free": label_free,
        "eval_metrics": {} if label_free else evaluation_metrics(uris["evaluation"]),
        "simsiam_monitor": monitor.get("final", {}),
        "random_init_knn_accuracy": monitor.get("random_init_knn_accuracy"),
        "random_init_linear_probe_accuracy": monitor.get("random_init_linear_probe_accuracy"),
        "baselines": monitor.get("baselines", {}),
        "random_init_knn_accuracy_recomputed": recomputed,
        "probe": read_json(
            os.path.join(uris["probe_run"], F.PROBE_HISTORY_FILE) if uris.get("probe_run") else None
        ).get("final", {}),
        "index": {
            **read_json(f"{uris['embedding_index'].rstrip('/')}/{F.INDEX_REPORT_FILE}"),
            "path": index_path,
            "projector_dir": status.get("projector_dir") or None,
        },
        "ingestion": read_json(f"{uris['examples'].rstrip('/')}/{F.INGESTION_REPORT_FILE}"),
        "class_names": [str(c) for c in index.class_names],
        "figure_sample": {"images": len(index), "of": len(full_index)},
        "profile": profile_row(profile, simsiam_config),
        "anomalies": read_anomalies(uris.get("anomalies"), split_names),
    }
    with tempfile.TemporaryDirectory() as tmp:
        figures, data["figures_shown"] = draw_figures(
            index,
            random_emb,
            monitor.get("history", {}),
            knn_references(baseline_scores(data)),
            queries_per_class,
            tmp,
        )
        data["figures"] = {}
        if figures_dir:
            fileio.makedirs(figures_dir)
            for name, path in figures.items():
                data["figures"][name] = f"{figures_dir.rstrip('/')}/{os.path.basename(path)}"
                fileio.copy(path, data["figures"][name], overwrite=True)
        return render_report(data, figures), data


def profile_row(profile: str, simsiam_config: dict[str, Any]) -> dict[str, Any]:
    """What the report's header says of the run's recipe: the profile's name ("" when not known, e.g.
    `simsiam-tfx report` on a run made before the name was recorded) and the recipe's main settings
    (models/config.py `SimSiamConfig`: backbone, training and evaluation view sizes in px, epochs,
    batch size in images)."""
    keys = ("backbone", "image_size", "eval_size", "epochs", "batch_size")
    return {"name": profile, **{k: simsiam_config.get(k) for k in keys}}
