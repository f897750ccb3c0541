"""ExampleValidator's anomalies, read back as plain rows a person reads on the console and in the report.

TFX's ExampleValidator compares each split's statistics with the schema and writes one binary
`Anomalies` proto per split (`<artifact uri>/Split-<name>/SchemaDiff.pb`,
tfx/components/example_validator/executor.py); nothing in TFX shows it. This module turns it into
rows `{"split", "feature", "short", "description"}` (one per anomalous feature per split; a
dataset-level anomaly has feature "(dataset)"), which `simsiam-tfx run` and `ingest` print, one line
each, and which go into summary.json, ingestion.json and report.json/report.html.

What an anomaly does to the run: it warns, it does not stop. Every example already passed the per-file
checks (decoded, within the size limits, in a split), so an anomaly describes the data set (a class
name the curated schema does not list, a feature missing from some examples), not a broken example;
a new class is often a deliberate change, and the Evaluator and the gates still judge the model it
trains. TFX's ExampleValidator itself never fails a pipeline either; a user who wants a stop reads
the exit line and summary.json's `anomalies`.
"""

from __future__ import annotations

from typing import Any

ANOMALIES_FILE = "SchemaDiff.pb"  # tfx.components.example_validator.executor.DEFAULT_FILE_NAME
DATASET = "(dataset)"  # the feature name of an anomaly about the whole split (e.g. too few examples)


def read_anomalies(anomalies_uri: str | None, split_names: list[str]) -> list[dict[str, str]]:
    """Rows `{"split", "feature", "short", "description"}` of ExampleAnomalies at `anomalies_uri` for
    `split_names` (features sorted by name within a split); [] without a URI or a file."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2
    from tfx.dsl.io import fileio

    rows: list[dict[str, str]] = []
    for split in split_names if anomalies_uri else []:
        path = f"{anomalies_uri.rstrip('/')}/Split-{split}/{ANOMALIES_FILE}"
        if not fileio.exists(path):
            continue
        anomalies = anomalies_pb2.Anomalies()
        with fileio.open(path, "rb") as f:
            anomalies.ParseFromString(f.read())
        infos = sorted(anomalies.anomaly_info.items())
        if anomalies.HasField("dataset_anomaly_info"):
            infos.append((DATASET, anomalies.dataset_anomaly_info))
        rows += [
            {
                "split": split,
                "feature": name,
                "short": info.short_description.strip(),
                "description": info.description.strip(),
            }
            for name, info in infos
        ]
    return rows


def read_all_splits(anomalies_uri: str | None) -> list[dict[str, str]]:
    """`read_anomalies` of every `Split-<name>` folder at `anomalies_uri`, train splits first; [] when
    there is none (the ExampleValidator did not run)."""
    from tfx.dsl.io import fileio

    if not anomalies_uri or not fileio.exists(anomalies_uri):
        return []
    names = [n.rstrip("/")[len("Split-") :] for n in fileio.listdir(anomalies_uri) if n.startswith("Split-")]
    return read_anomalies(anomalies_uri, sorted(names, key=lambda s: (not s.endswith("train"), s)))


def anomaly_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One console line per anomaly: 'data anomaly (split eval) class_name: Unexpected string values: ...'."""
    return [
        f"data anomaly (split {r['split']}) {r['feature']}: {r['short']}: {r['description']}".rstrip(": ") for r in rows
    ]
