"""One name for each thing that crosses a step: tf.Example and transformed feature keys, artifact files.

ExampleGen writes the raw features, Transform the transformed ones, the Trainers, the serving
export, the Evaluator config and the indexer read them (docs/CONTRACTS.md lists their types).
"""

# Raw tf.Example features, written by ImageExampleGen (components/ingest/executor.py).
IMAGE = "image"  # bytes: the encoded JPEG/PNG file as it was read
LABEL = "label"  # int64: index of the class name in sorted class-folder order
CLASS_NAME = "class_name"  # bytes (UTF-8): the class folder's name
IMAGE_ID = "image_id"  # bytes (UTF-8): path relative to the data folder; the split hashes it

# Transformed features, written by Transform (components/transform.py).
IMAGE_U8 = "image_u8"  # bytes: a serialized uint8 tensor [T, T, 3], the whole photo at the stored size
PIXEL_MEAN = "pixel_mean"  # float [3]: per-channel mean over the train split, in [0, 1] units
PIXEL_STD = "pixel_std"  # float [3]: per-channel std, same units

# Files inside artifacts.
INGESTION_REPORT_FILE = "ingestion_report.json"  # next to the ExampleGen's examples
MONITOR_HISTORY_FILE = "monitor_history.json"  # SimSiam Trainer: per-epoch loss, collapse, kNN
PROBE_HISTORY_FILE = "probe_history.json"  # linear-probe Trainer: accuracies and class names
LABEL_FREE_METRICS_FILE = "label_free_metrics.json"  # LabelFreeEvaluator: measures, thresholds, decision
INDEX_FILE = "index.npz"  # EmbeddingIndexer: ids, norms, labels, thumbnails; vectors in index.faiss (serving/index.py)
INDEX_REPORT_FILE = "index_report.json"  # EmbeddingIndexer: the index gate's measures, files it failed on
REPORT_FILE = "report.html"  # RunReport: the run's page (the HtmlReport artifact's URI is this file)
REPORT_DATA_FILE = "report.json"  # RunReport: the data the page is rendered from, beside it
