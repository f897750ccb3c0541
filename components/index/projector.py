"""The TensorBoard projector's files for an embedding index: `tensorboard --logdir OUT` shows them.

Format: TensorBoard's projector plugin (tensorboard/plugins/projector, `ProjectorConfig` in
projector_config.proto; https://www.tensorflow.org/tensorboard/tensorboard_projector_plugin). One
folder holds `projector_config.pbtxt`, the vectors as `embeddings.tsv` (tab-separated, one row per
image, no header), `metadata.tsv` (a header row, then one row per image: class, image id, split) and
`sprite.png` (the thumbnails tiled row-major in a square grid). The plugin lists a folder only when it
is a TensorBoard run, i.e. holds an event file, so a one-scalar event file is written beside them.
"""

from __future__ import annotations

import math
import os

import numpy as np

PROJECTOR_DIR = "projector"
CONFIG_FILE = "projector_config.pbtxt"
TENSOR_FILE = "embeddings.tsv"
METADATA_FILE = "metadata.tsv"
SPRITE_FILE = "sprite.png"
TENSOR_NAME = "embeddings"
MAX_SPRITE_PX = 8192  # the projector's limit for the sprite image's side


def sprite(thumbnails: np.ndarray, max_px: int = MAX_SPRITE_PX) -> tuple[np.ndarray, int]:
    """uint8 `[N, H, W, 3]` thumbnails -> (uint8 sprite `[G*d, G*d, 3]`, tile side d), G = ceil(sqrt(N)).

    Tiles are resized down when G*H would pass `max_px`, the projector's 8192-px limit (more than
    16,384 images at 64 px). Unused tiles at the end stay black."""
    from PIL import Image

    n, h = len(thumbnails), int(thumbnails.shape[1])
    grid = max(1, math.ceil(math.sqrt(n)))
    side = min(h, max_px // grid)
    out = np.zeros((grid * side, grid * side, 3), np.uint8)
    for i, thumb in enumerate(thumbnails):
        tile = thumb if side == h else np.asarray(Image.fromarray(thumb).resize((side, side), Image.BILINEAR))
        r, c = divmod(i, grid)
        out[r * side : (r + 1) * side, c * side : (c + 1) * side] = tile
    return out, side


def _cell(value: str) -> str:
    """A metadata cell: tabs and newlines would split rows or columns, so they become spaces."""
    return str(value).replace("\t", " ").replace("\n", " ")


def write_projector(
    folder: str,
    embeddings: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    image_ids: np.ndarray,
    splits: np.ndarray | None,
    thumbnails: np.ndarray | None,
) -> str:
    """Writes the projector files for `embeddings` (float `[N, D]`) into local `folder`; returns the config's path.

    `labels` int `[N]` index `class_names` (-1: unlabelled); `thumbnails` uint8 `[N, H, W, 3]` or None
    (then no sprite). Raises ValueError when the row counts differ."""
    import tensorflow as tf
    from google.protobuf import text_format
    from PIL import Image
    from tensorboard.plugins.projector import projector_config_pb2

    n = len(embeddings)
    if not len(labels) == len(image_ids) == n or (thumbnails is not None and len(thumbnails) != n):
        raise ValueError(
            f"{n} embeddings but {len(labels)} labels, {len(image_ids)} ids"
            + (f", {len(thumbnails)} thumbnails" if thumbnails is not None else "")
        )
    os.makedirs(folder, exist_ok=True)
    np.savetxt(os.path.join(folder, TENSOR_FILE), np.asarray(embeddings, np.float32), fmt="%.5g", delimiter="\t")
    with open(os.path.join(folder, METADATA_FILE), "w") as f:
        f.write("class\timage_id\tsplit\n")
        for i in range(n):
            name = class_names[labels[i]] if 0 <= labels[i] < len(class_names) else "unlabelled"
            f.write(f"{_cell(name)}\t{_cell(image_ids[i])}\t{_cell(splits[i] if splits is not None else '')}\n")
    config = projector_config_pb2.ProjectorConfig()
    embedding = config.embeddings.add(tensor_name=TENSOR_NAME, tensor_path=TENSOR_FILE, metadata_path=METADATA_FILE)
    embedding.tensor_shape.extend([n, int(embeddings.shape[1])])
    if thumbnails is not None and n:
        image, side = sprite(thumbnails)
        Image.fromarray(image).save(os.path.join(folder, SPRITE_FILE))
        embedding.sprite.image_path = SPRITE_FILE
        embedding.sprite.single_image_dim.extend([side, side])
    path = os.path.join(folder, CONFIG_FILE)
    with open(path, "w") as f:
        f.write(text_format.MessageToString(config))
    with tf.summary.create_file_writer(folder).as_default():  # makes the folder a run the plugin lists
        tf.summary.scalar("projector/num_embeddings", n, step=0)
    return path
