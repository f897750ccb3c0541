"""The small JSON files the steps write beside their artifacts (decisions, histories, reports), read
through TFX's `fileio` so that the same call reads a local path or a `gs://` one."""

from __future__ import annotations

import json
from typing import Any

from tfx.dsl.io import fileio


def read_json(path: str | None) -> dict[str, Any]:
    """The JSON object in `path`, or {} when `path` is None or there is no such file (a step that did
    not run, or an artifact of another kind)."""
    if path and fileio.exists(path):
        with fileio.open(path, "r") as f:
            return json.load(f)
    return {}
