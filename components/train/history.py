"""Per-epoch monitor history that survives a killed and resumed Trainer."""

from __future__ import annotations

import json
import os
from typing import Any

import keras


class HistoryFile(keras.callbacks.Callback):
    """Appends each epoch's logs to a JSON file; on resume keeps only epochs before the restored one."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.epochs: list[dict[str, Any]] = []

    def on_train_begin(self, logs=None):
        if os.path.exists(self.path):
            with open(self.path) as f:
                self.epochs = json.load(f)["epochs"]
        start = getattr(self.model, "_initial_epoch", 0) or 0  # set by BackupAndRestore
        self.epochs = [e for e in self.epochs if e["epoch"] < start]
        if start:
            print(f"resuming SimSiam training from checkpoint at epoch {start}", flush=True)

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}}
        self.epochs.append(row)
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            json.dump({"epochs": self.epochs}, f)
        os.replace(tmp, self.path)

    def series(self) -> dict[str, list[float | None]]:
        keys = sorted({k for e in self.epochs for k in e if k != "epoch"})
        return {k: [e.get(k) for e in self.epochs] for k in keys}
