"""The ImageExampleGen driver: the cache key covers every file at any depth, whatever its name.

TFX's FileBasedDriver fingerprints the files matching the split pattern (`data_dir/*/*`) by their size
and their mtime in whole seconds (`tfx.utils.io_utils.generate_fingerprint`): an image below a class's
sub-folder rewritten in place left the fingerprint unchanged (the run said `ImageExampleGen cached` and
trained on stale examples), and a file name that is not valid UTF-8 made its glob raise
`UnicodeDecodeError`. This driver lists the folder exactly as the executor does
(`components.ingest.files.list_image_folder`, or `list_unlabeled_folder` for a folder of unlabelled
images) and hashes every listed path (ingested, rejected or ignored) with its size and mtime in
nanoseconds; with both a data folder and an unlabelled folder, both fingerprints make the key.
Remote folders (gs://...) keep TFX's fingerprint (`input_base/*/*`), and a remote unlabelled folder
is keyed by its path only: there, a changed file is not noticed (run with --no-cache after changing
remote data). On Kubeflow V2 TFX's own driver runs, with the same limits.
"""

from __future__ import annotations

import hashlib
import os

from tfx.components.example_gen import driver, input_processor, utils

from components.ingest.files import DataError, list_image_folder, list_unlabeled_folder


def folder_fingerprint(root: str, labeled: bool = True) -> str:
    """A hex digest that changes when any file below `root` is added, removed, renamed or rewritten
    (size or mtime_ns), links followed; "missing" for a folder that cannot be listed (the executor
    then fails with the reason). `labeled`: `root` holds class folders, else unlabelled images."""
    try:
        listing = list_image_folder(root) if labeled else list_unlabeled_folder(root)
    except DataError:
        return "missing"
    digest = hashlib.sha256()
    listed = [i for i, _ in listing.files] + [i for i, _ in listing.rejected] + [p for p, _ in listing.ignored]
    paths = [listing.paths.get(i, i) for i in listed]
    for image_id in sorted(set(paths)):
        path = os.path.join(listing.root, image_id)
        try:
            stat = os.stat(path)
            state = f"{stat.st_size}:{stat.st_mtime_ns}"
        except OSError as err:
            state = f"error:{err.errno}"
        digest.update(os.fsencode(image_id) + b"\0" + state.encode() + b"\0")
    return digest.hexdigest()


class _FolderInputProcessor(input_processor.FileBasedInputProcessor):
    labeled = True

    def resolve_span_and_version(self):
        span, version = 0, None
        if "://" in self._input_base_uri:
            return super().resolve_span_and_version()
        self._fingerprint = f"image_folder:{folder_fingerprint(self._input_base_uri, self.labeled)}"
        return span, version


class ImageFolderDriver(driver.FileBasedDriver):
    """FileBasedDriver whose input fingerprint is `folder_fingerprint` of `input_base` (class folders, or
    unlabelled images) and of the custom config's `unlabeled_dir` (see the module docstring)."""

    def resolve_exec_properties(self, exec_properties, pipeline_info, component_info):
        from components.ingest.executor import IngestConfig

        config = IngestConfig.from_exec_properties(exec_properties)
        self._labeled = config.labeled
        exec_properties = super().resolve_exec_properties(exec_properties, pipeline_info, component_info)
        if config.unlabeled_dir and "://" not in config.unlabeled_dir:
            exec_properties[utils.FINGERPRINT_PROPERTY_NAME] += (
                f"\nunlabeled_folder:{folder_fingerprint(config.unlabeled_dir, labeled=False)}"
            )
        elif config.unlabeled_dir:
            exec_properties[utils.FINGERPRINT_PROPERTY_NAME] += f"\nunlabeled_folder:{config.unlabeled_dir}"
        return exec_properties

    def get_input_processor(self, splits, range_config=None, input_base_uri=None):
        processor = _FolderInputProcessor(input_base_uri, splits, range_config)
        processor.labeled = getattr(self, "_labeled", True)
        return processor
