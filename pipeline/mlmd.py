"""What happened in a pipeline run, read back from ML Metadata (SQLite)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

STATE_NAMES = {v: k for k, v in metadata_store_pb2.Execution.State.items()}


@dataclass
class NodeExecution:
    node_id: str
    state: str  # COMPLETE, CACHED, RUNNING, FAILED, ...
    seconds: float
    outputs: dict[str, list[metadata_store_pb2.Artifact]] = field(default_factory=dict)


def open_store(sqlite_path: str, read_only: bool = False) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = sqlite_path
    config.sqlite.connection_mode = (
        metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
        if read_only
        else metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    )
    return metadata_store.MetadataStore(config)


def pipeline_runs(store: metadata_store.MetadataStore) -> list[metadata_store_pb2.Context]:
    """All pipeline-run contexts, oldest first."""
    return sorted(store.get_contexts_by_type("pipeline_run"), key=lambda c: (c.create_time_since_epoch, c.id))


def run_executions(
    store: metadata_store.MetadataStore, run: metadata_store_pb2.Context, with_outputs: bool = True
) -> list[NodeExecution]:
    """The executions of one pipeline run in start order, labelled with their node ids."""
    result = []
    for execution in sorted(store.get_executions_by_context(run.id), key=lambda e: e.id):
        node = next((c.name for c in store.get_contexts_by_execution(execution.id) if c.type == "node"), "?")
        node_id = node.split(".", 1)[-1]
        end = execution.last_update_time_since_epoch or int(time.time() * 1000)
        info = NodeExecution(
            node_id,
            STATE_NAMES.get(execution.last_known_state, "UNKNOWN"),
            (end - execution.create_time_since_epoch) / 1000.0,
        )
        if with_outputs:
            events = store.get_events_by_execution_ids([execution.id])
            outputs = [e for e in events if e.type == metadata_store_pb2.Event.OUTPUT]
            artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in outputs])}
            for event in outputs:
                key = event.path.steps[0].key if event.path.steps else "?"
                info.outputs.setdefault(key, []).append(artifacts[event.artifact_id])
        result.append(info)
    return result


def latest_run(sqlite_path: str) -> list[NodeExecution]:
    runs = pipeline_runs(open_store(sqlite_path))
    return run_executions(open_store(sqlite_path), runs[-1]) if runs else []


def output_uri(executions: list[NodeExecution], node_id: str, key: str) -> str | None:
    for ex in executions:
        if ex.node_id == node_id and ex.outputs.get(key):
            return ex.outputs[key][0].uri
    return None


def custom_int(executions: list[NodeExecution], node_id: str, key: str, prop: str) -> int | None:
    for ex in executions:
        if ex.node_id == node_id and ex.outputs.get(key):
            props = ex.outputs[key][0].custom_properties
            return props[prop].int_value if prop in props else None
    return None
