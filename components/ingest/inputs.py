"""What a user points the pipeline at: `ImageInput`, one validated description of the images to ingest.

The kinds of input (`simsiam-tfx ingest` and `simsiam-tfx run` take the same options, docs/data.md "Your
own images"):
- `--data-dir DIR`: a folder of class folders (DIR/<class>/<image>): every image labelled;
- `--unlabeled-dir DIR`: every JPEG/PNG image below DIR at any depth, none labelled (sub-folders by
  date or camera are just folders here, never classes);
- both: the labelled class folders plus the unlabelled images;
- `--examples GLOB --image-key KEY [--label-key KEY]`: TFRecord files of tf.Examples holding encoded
  images (with labels under KEY, or none);
- `--tfds NAME`: a TFDS image-classification dataset.
SimSiam trains on every valid image; the kNN monitor, the linear probe and the Evaluator use the
labelled ones; without any label the label-free gate decides what is pushed.

Pure Python (no TensorFlow): the CLI checks folders with it in a second, before anything loads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# Below this many held-out images a run is warned that its gate measures noise (small_eval_warning).
SMALL_EVAL = 100


@dataclass(frozen=True)
class ImageInput:
    """One kind of input, or the two folder kinds together. Raises ValueError (the message names the
    options) on a combination that is not one of the module docstring's."""

    data_dir: str | None = None
    unlabeled_dir: str | None = None
    examples: str | None = None  # a glob of TFRecord files
    image_key: str = "image"
    label_key: str | None = None
    tfds_name: str | None = None
    tfds_data_dir: str | None = None

    def __post_init__(self) -> None:
        kinds = [bool(self.data_dir or self.unlabeled_dir), bool(self.examples), bool(self.tfds_name)]
        if sum(kinds) != 1:
            raise ValueError("give --data-dir and/or --unlabeled-dir, or --examples, or --tfds (one kind of input)")
        if self.label_key and not self.examples:
            raise ValueError(
                "--label-key names the label feature of --examples records; folders take the label "
                "from the class folder"
            )
        if self.tfds_data_dir and not self.tfds_name:
            raise ValueError("--tfds-data-dir is where a --tfds dataset is kept; give --tfds NAME with it")
        if self.examples and not self.image_key:
            raise ValueError("--image-key must name the bytes feature that holds the encoded image")
        if self.data_dir and self.unlabeled_dir and "://" not in self.data_dir + self.unlabeled_dir:
            labeled, unlabeled = (os.path.realpath(p) for p in (self.data_dir, self.unlabeled_dir))
            if os.path.commonpath([labeled, unlabeled]) in (labeled, unlabeled):
                raise ValueError(
                    f"--data-dir {self.data_dir} and --unlabeled-dir {self.unlabeled_dir} are one inside "
                    "the other: a folder inside the data folder would be a class, and class folders "
                    "inside the unlabelled folder would be read twice; give two separate folders"
                )

    @property
    def labeled(self) -> bool:
        """Whether labelled images are expected (the probe and the Evaluator run)."""
        return bool(self.data_dir or self.tfds_name or (self.examples and self.label_key))

    @property
    def unlabeled(self) -> bool:
        """Whether unlabelled images are expected."""
        return bool(self.unlabeled_dir or (self.examples and not self.label_key))

    def folders(self) -> tuple[str | None, str | None]:
        """(data_dir, unlabeled_dir), local paths made absolute."""

        def local(path: str | None) -> str | None:
            return path if not path or "://" in path else os.path.abspath(path)

        return local(self.data_dir), local(self.unlabeled_dir)

    def describe(self) -> str:
        """The input in words, for messages."""
        if self.examples:
            labels = f", labels {self.label_key!r}" if self.label_key else ", no labels"
            return f"TFRecord files {self.examples} (images {self.image_key!r}{labels})"
        if self.tfds_name:
            return f"TFDS dataset {self.tfds_name}"
        folders = (("data folder", self.data_dir), ("unlabelled image folder", self.unlabeled_dir))
        return " and ".join(f"{kind} {path}" for kind, path in folders if path)

    def listing(self):
        """The `ImageListing` of the local folders (None for other inputs): raises DataError when a folder is
        missing, empty, or the two folders share an image path. Walked once per ImageInput: `run` asks
        for it up to three times in its first second (`split_problem` before and after TensorFlow loads,
        `small_eval_warning`), and a large folder takes seconds to walk."""
        if "_listing" not in self.__dict__:  # frozen dataclass: the cache goes into __dict__ directly
            self.__dict__["_listing"] = self._walk()
        return self.__dict__["_listing"]

    def _walk(self):
        from components.ingest.files import folder_listing

        data_dir, unlabeled_dir = self.folders()
        if self.examples or self.tfds_name or "://" in (data_dir or "") + (unlabeled_dir or ""):
            return None
        return folder_listing(data_dir, unlabeled_dir)

    def small_eval_warning(self, eval_percent: int) -> str | None:
        """A warning when the held-out split the gate will measure is too small to decide anything, or
        None (also for inputs that are not local folders). With labels: one accuracy on n images has a
        standard error of sqrt(p (1 - p) / n), at most 0.5 / sqrt(n) (binomial), so below 100 images it
        exceeds 5 points. Without labels: the label-free gate's effective rank (RankMe) of an `[n, D]`
        embedding matrix cannot exceed n (components/evaluate/label_free.py), so below 100 images the
        rank ratio it needs is hard to reach. Call it after `split_problem` found none."""
        from components.ingest.ingestion_record import predicted_counts, predicted_unlabeled

        listing = self.listing()
        if listing is None:
            return None
        if self.labeled:
            n = sum(predicted_counts(listing.files, eval_percent)["eval"].values())
            if n < SMALL_EVAL:
                return (
                    f"only {n} labelled eval images: one accuracy on them has a standard error of up to "
                    f"{50 / n**0.5:.0f} points, so the gate decides on noise (more photos, or a larger "
                    f"--eval-percent than {eval_percent})"
                )
            return None
        n = predicted_unlabeled(listing.files, eval_percent)["eval"]
        if n < SMALL_EVAL:
            return (
                f"only {n} held-out images for the label-free gate: their effective rank cannot exceed {n}, "
                f"so it may refuse a good model (more photos, or a larger --eval-percent than {eval_percent})"
            )
        return None

    def split_problem(self, eval_percent: int, batch_size: int) -> str | None:
        """Why the listed folders cannot make train/eval splits for a run (before any image is decoded),
        or None (also for inputs that are not local folders: checked when they are read)."""
        from components.ingest.files import DataError
        from components.ingest.ingestion_record import check_splits, predicted_counts, predicted_unlabeled

        try:
            listing = self.listing()
            if listing is None:
                return None
            check_splits(
                list(listing.classes),
                predicted_counts(listing.files, eval_percent),
                self.describe(),
                eval_percent,
                batch_size,
                unlabeled=predicted_unlabeled(listing.files, eval_percent),
                labeled=self.labeled,
            )
        except DataError as err:
            return str(err)
        return None
