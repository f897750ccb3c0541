"""The graphs' one decode (components/image_decode.py) against Pillow, the reference of what a person sees.

EXIF orientation: all 8 values against `ImageOps.exif_transpose`. Transparency: RGBA/LA/palette PNGs
composited onto white, hidden RGB under alpha 0 invisible. Size limits: read from the header, a
20000x20000 px PNG of a few KB rejected before decoding.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image, ImageOps

tf = pytest.importorskip("tensorflow")

from components import image_decode as D  # noqa: E402
from serving.images import ImageLimits, check_image_bytes, displayed_rgb  # noqa: E402
from tests.fakes.images import encode, make_image, png_with_header_size  # noqa: E402


def exif_bytes(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def decode(data: bytes, limits: ImageLimits = ImageLimits()) -> np.ndarray:
    return D.decode_image(tf.constant(data), limits).numpy()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow_exif_transpose(orientation: int) -> None:
    data = encode(make_image((40, 24), seed=orientation), "JPEG", quality=95, exif=exif_bytes(orientation))
    stored = tf.io.decode_jpeg(data, channels=3).numpy()  # the pixels as stored, by the same decoder
    reference = Image.fromarray(stored)
    reference.getexif()[0x0112] = orientation
    expected = np.asarray(ImageOps.exif_transpose(reference))
    assert (expected.shape[:2] == (24, 40)) == (orientation < 5)
    np.testing.assert_array_equal(decode(data), expected)
    kind, width, height, parsed = (int(t) for t in D.read_header(tf.constant(data)))
    assert (kind, width, height, parsed) == (D.JPEG, 40, 24, orientation)


def test_big_endian_exif_after_a_jfif_segment() -> None:
    """Exif written by another camera: Motorola byte order (MM), after an APP0 JFIF segment, tag 6."""
    import struct

    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 2)
    tiff += struct.pack(">HHI", 0x010F, 2, 4) + b"Cam\x00"  # Make
    tiff += struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack(">I", 0)
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + 6 + len(tiff)) + b"Exif\x00\x00" + tiff
    plain = encode(make_image((30, 20), seed=3), "JPEG", quality=95)
    assert plain[2:4] == b"\xff\xe0"  # Pillow writes the JFIF APP0 first
    app0_end = 4 + int.from_bytes(plain[4:6], "big")
    data = plain[:app0_end] + app1 + plain[app0_end:]
    assert displayed_rgb(Image.open(io.BytesIO(data))).size == (20, 30)
    np.testing.assert_array_equal(decode(data), np.rot90(tf.io.decode_jpeg(plain).numpy(), k=-1))


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparent_pixels_are_white_whatever_rgb_they_hide(mode: str) -> None:
    y, x = np.mgrid[0:32, 0:32]
    disc = (x - 16) ** 2 + (y - 16) ** 2 < 100
    files = []
    for hidden in (0, 255):
        rgba = np.zeros((32, 32, 4), np.uint8)
        rgba[..., :3] = hidden
        rgba[disc] = (200, 40, 90, 255)
        rgba[5, 5] = (10, 200, 30, 128)  # half transparent: mixed with white
        image = Image.fromarray(rgba, "RGBA")
        if mode == "LA":
            image = image.convert("LA")
        elif mode == "P":  # a palette with one fully transparent entry (tRNS)
            image = Image.fromarray(np.where(disc, 1, 0).astype(np.uint8), "P")
            image.putpalette([hidden] * 3 + [200, 40, 90])
            image.info["transparency"] = 0
        files.append(encode(image, "PNG"))
    first, second = (decode(f) for f in files)
    np.testing.assert_array_equal(first, second)
    assert (first[0, 0] == 255).all()
    for data in files:
        twin = np.asarray(displayed_rgb(Image.open(io.BytesIO(data))), dtype=int)
        assert np.abs(twin - decode(data)).max() <= 1  # Pillow's integer blend rounds differently
    if mode == "RGBA":
        assert tuple(first[5, 5]) == tuple(round(c * 128 / 255 + 255 * 127 / 255) for c in (10, 200, 30))


def test_opaque_images_decode_exactly_as_before() -> None:
    for data in (
        encode(make_image((33, 17), seed=5), "PNG"),
        encode(make_image((33, 17), seed=6), "JPEG"),
        encode(make_image((33, 17), mode="L", seed=7), "PNG"),
    ):
        expected = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
        np.testing.assert_array_equal(decode(data), expected)


def test_size_limits_come_from_the_header_before_decoding() -> None:
    bomb = png_with_header_size(20000, 20000)
    assert len(bomb) < 100_000
    kind, width, height, _ = (int(t) for t in D.read_header(tf.constant(bomb)))
    assert (kind, width, height) == (D.PNG, 20000, 20000)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image size 20000x20000 px is outside the limits"):
        decode(bomb)
    problem = D.decode_problem(bomb)
    assert problem and "20000x20000" in problem.reason and "40,000,000 pixels" in problem.reason
    small = ImageLimits(min_side=8, max_side=30, max_pixels=600)
    jpeg = encode(make_image((40, 24)), "JPEG")
    assert "40x24" in D.decode_problem(jpeg, small).reason
    assert D.decode_problem(jpeg) is None


def test_other_formats_and_garbage_are_refused_by_name() -> None:
    gif = encode(make_image((20, 20)), "GIF")
    for data in (gif, b"these bytes are no image", b"", b"\n\xdb"):  # the last: found by the fuzzer
        problem = D.decode_problem(data)
        assert problem and "Unknown image file format: only JPEG and PNG" in problem.reason


# --- issue 28, item 3: decode memory bounded for every accepted input --------------------------------


def one_bit_png(width: int, height: int) -> bytes:
    """A 1-bit PNG of stripes: a few KB however large, the shape of issue 28's decompression bomb."""
    stripes = (np.arange(width)[None, :] // 7 + np.arange(height)[:, None] // 5) % 2 * 255
    return encode(Image.fromarray(np.broadcast_to(stripes, (height, width)).astype(np.uint8)).convert("1"), "PNG")


def test_a_png_above_max_decoded_pixels_is_refused_from_its_header() -> None:
    """The issue's kind of bomb: a 1-bit PNG of 6324x6324 px, inside the 40 M pixel limit and a few KB,
    was expanded to RGBA float32 at full size; it is refused from its header now."""
    bomb = one_bit_png(6324, 6324)
    assert len(bomb) < 200_000 and 6324 * 6324 < ImageLimits().max_pixels
    expected = (
        "PNG size 6324x6324 px is over the 16,000,000 pixels a PNG may have (a PNG cannot be decoded at "
        "reduced scale; each side 8-16384 px, at most 40,000,000 pixels for JPEG)"
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(expected + " read from its header")):
        decode(bomb)
    problem = check_image_bytes(bomb)
    assert problem is not None and (problem.kind, problem.reason) == ("bad_dimensions", expected)
    assert check_image_bytes(one_bit_png(4000, 4000)) is None  # 16,000,000 px: the largest PNG accepted


def test_a_jpeg_above_max_decoded_pixels_decodes_at_the_largest_scale_that_fits() -> None:
    jpeg = encode(make_image((320, 240), seed=4), "JPEG")
    full = tf.io.decode_jpeg(jpeg, channels=3).numpy()
    np.testing.assert_array_equal(decode(jpeg, ImageLimits(max_decoded_pixels=320 * 240)), full)  # at the bound
    for limit, ratio in ((320 * 240 - 1, 2), (160 * 120, 2), (160 * 120 - 1, 4), (4_800, 4), (4_799, 8), (1, 8)):
        reduced = decode(jpeg, ImageLimits(max_decoded_pixels=limit))
        np.testing.assert_array_equal(reduced, tf.io.decode_jpeg(jpeg, channels=3, ratio=ratio).numpy())
        assert reduced.shape == (240 // ratio, 320 // ratio, 3), (limit, ratio)
    assert check_image_bytes(jpeg, ImageLimits(max_decoded_pixels=1)) is None  # JPEGs are never refused for it


def test_one_bit_and_opaque_pngs_decode_as_pillow_shows_them() -> None:
    """TensorFlow's 4-channel decode of a 1-bit grey PNG gives alpha 1, not 255, so the composite made it
    almost white; an opaque PNG is now decoded with 3 channels."""
    png = one_bit_png(64, 48)
    np.testing.assert_array_equal(decode(png), np.asarray(displayed_rgb(Image.open(io.BytesIO(png)))))
    with_trns = encode(Image.open(io.BytesIO(png)).convert("L"), "PNG", transparency=0)
    shown = np.asarray(displayed_rgb(Image.open(io.BytesIO(with_trns))))
    np.testing.assert_array_equal(decode(with_trns), shown)
    assert shown.min() == 255  # black was the transparent value: all white


def test_the_integer_composite_equals_the_float_formula_for_every_value_and_alpha() -> None:
    pairs = np.array([[v, a] for v in range(256) for a in range(256)], np.uint8).reshape(256, 256, 2)
    rgba = np.concatenate([pairs[..., :1]] * 3 + [pairs[..., 1:]], -1)
    alpha = rgba[..., 3:].astype(np.float32) / 255.0
    expected = np.round(rgba[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    np.testing.assert_array_equal(D.composite(tf.constant(rgba)).numpy(), expected)
    tall = np.tile(rgba[:, :5], (3, 1, 1))  # 768 rows: three blocks of rows
    np.testing.assert_array_equal(D.composite(tf.constant(tall)).numpy(), np.tile(expected[:, :5], (3, 1, 1)))


@pytest.mark.slow
@pytest.mark.parametrize("case", ["png_1bit_4000x4000", "jpeg_4000x4000"])
def test_the_largest_accepted_images_decode_within_the_stated_bound(case: str) -> None:
    """Peak memory one decode adds, in a fresh process (benchmarks/decode_memory.py): at most
    `max_decoded_pixels` x 10 bytes (RGBA, composited blocks, their concatenation) plus TensorFlow's
    working space. Before, the 1-bit PNG was composited in float32 at full size; the JPEG was within the
    bound already and stays a guard."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.decode_memory", "--one", case],
        capture_output=True,
        text=True,
        cwd=repo,
        timeout=300,
        check=True,
    )
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["graph_error"] is None and row["check_refusal"] is None
    assert row["graph_mb"] < 16_000_000 * 10 / 2**20, row  # the default max_decoded_pixels: 152.6 MB
