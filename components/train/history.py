"""Per-epoch monitor history that survives a killed and resumed Trainer."""

from __future__ import annotations

import json
import os

from models.monitors import EpochHistory

HISTORY_FILE = "history.json"  # in a checkpoint folder: the epochs a resumed run keeps


class HistoryFile(EpochHistory):
    """`EpochHistory` kept in a JSON file after every epoch; on resume (`initial_epoch`, the epochs
    the restored checkpoint holds) keeps only the epochs before it."""

    def __init__(self, path: str, initial_epoch: int = 0):
        super().__init__()
        self.path, self.initial_epoch = path, initial_epoch

    def on_train_begin(self, logs=None):
        if os.path.exists(self.path):
            with open(self.path) as f:
                self.epochs = json.load(f)["epochs"]
        start = self.initial_epoch
        self.epochs = [e for e in self.epochs if e["epoch"] < start]
        if start:
            print(f"resuming SimSiam training from checkpoint at epoch {start}", flush=True)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            json.dump({"epochs": self.epochs}, f)
        os.replace(tmp, self.path)
