"""The Transform graph: decode + resize once, per-channel statistics from TFT analyzers."""

from __future__ import annotations

import io
import tempfile

import numpy as np
import pytest
from PIL import Image

tf = pytest.importorskip("tensorflow")
tft = pytest.importorskip("tensorflow_transform")
tft_beam = pytest.importorskip("tensorflow_transform.beam")

from components import features as F  # noqa: E402
from components import transform as T  # noqa: E402
from components.examples import RAW_FEATURES  # noqa: E402


def _jpeg(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def _raw_metadata():
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    # SchemaGen(infer_feature_shape=True) gives the raw features shape [1], hence the [1] here.
    spec = {name: tf.io.FixedLenFeature([1], tf.as_dtype(dtype)) for name, dtype in RAW_FEATURES.items()}
    return dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))


def test_decode_and_resize_keeps_the_whole_of_a_wide_image() -> None:
    image = np.full((20, 40, 3), 128, np.uint8)
    image[:, :10] = (255, 0, 0)  # left quarter red, right quarter blue: a centre square would lose both
    image[:, 30:] = (0, 0, 255)
    out = T.decode_and_resize(tf.constant(_jpeg(image)), 8).numpy()
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, 0], np.tile([255, 0, 0], (8, 1)))  # the whole width is kept ...
    np.testing.assert_array_equal(out[:, -1], np.tile([0, 0, 255], (8, 1)))
    np.testing.assert_array_equal(out[:, 3:5], np.full((8, 2, 3), 128))  # ... squashed to a square


def test_grayscale_and_alpha_inputs_become_rgb_alpha_over_white() -> None:
    gray = _jpeg(np.full((10, 12), 77, np.uint8))
    rgba = _jpeg(np.full((10, 12, 4), 120, np.uint8))
    out = T.decode_batch(tf.constant([gray, rgba]), 6).numpy()
    assert out.shape == (2, 6, 6, 3)
    np.testing.assert_array_equal(out[0], 77)
    # RGBA (120, 120, 120, alpha 120) over white: 120 * 120/255 + 255 * 135/255 = 191.47 -> 191.
    np.testing.assert_array_equal(out[1], 191)


@pytest.mark.parametrize("custom_config", [None, {}, {"max_side": 4096}])
def test_the_stored_size_is_required_one_line_naming_the_key(custom_config) -> None:
    """No default of its own: the pipeline passes the recipe's stored_size, the one place it is set."""
    with pytest.raises(ValueError, match="'stored_size'") as err:
        T.preprocessing_fn({F.IMAGE: tf.constant([[b""]])}, custom_config)
    assert "\n" not in str(err.value)


def test_analyzers_compute_per_channel_mean_and_std_over_all_pixels() -> None:
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(6)]
    arrays[0][..., 0] = 255  # make the channels differ clearly
    rows = [
        {
            F.IMAGE: [_jpeg(a)],
            F.LABEL: [i % 2],
            F.CLASS_NAME: [b"a" if i % 2 == 0 else b"b"],
            F.IMAGE_ID: [f"{i}.jpg".encode()],
        }
        for i, a in enumerate(arrays)
    ]
    with tempfile.TemporaryDirectory() as tmp, tft_beam.Context(temp_dir=tmp):
        (transformed, _), _ = (rows, _raw_metadata()) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: T.preprocessing_fn(inputs, {"stored_size": 16})
        )
    pixels = np.stack(arrays).astype(np.float64) / 255.0
    want_mean = pixels.mean(axis=(0, 1, 2))
    want_std = pixels.std(axis=(0, 1, 2))
    for row, original in zip(transformed, arrays):
        np.testing.assert_allclose(row[F.PIXEL_MEAN], want_mean, rtol=1e-4)
        np.testing.assert_allclose(row[F.PIXEL_STD], want_std, rtol=1e-3)
        image = tf.io.parse_tensor(row[F.IMAGE_U8], tf.uint8).numpy()
        np.testing.assert_array_equal(image, original)  # same size: PNG is lossless, nothing resampled
    assert [int(r[F.LABEL]) for r in transformed] == [0, 1, 0, 1, 0, 1]
    # compact storage: one byte per channel (plus a small tensor header)
    assert len(transformed[0][F.IMAGE_U8]) < 16 * 16 * 3 + 64
