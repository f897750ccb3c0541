"""Per-epoch monitor history that survives a killed and resumed Trainer."""

from __future__ import annotations

import json
import os

from models.monitors import EpochHistory


class HistoryFile(EpochHistory):
    """`EpochHistory` kept in a JSON file after every epoch; on resume keeps only the epochs before
    the restored one."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def on_train_begin(self, logs=None):
        if os.path.exists(self.path):
            with open(self.path) as f:
                self.epochs = json.load(f)["epochs"]
        start = getattr(self.model, "_initial_epoch", 0) or 0  # set by BackupAndRestore
        self.epochs = [e for e in self.epochs if e["epoch"] < start]
        if start:
            print(f"resuming SimSiam training from checkpoint at epoch {start}", flush=True)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            json.dump({"epochs": self.epochs}, f)
        os.replace(tmp, self.path)
