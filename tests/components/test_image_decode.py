"""The graphs' one decode (components/image_decode.py) against Pillow, the reference of what a person sees.

EXIF orientation: all 8 values against `ImageOps.exif_transpose`. Transparency: RGBA/LA/palette PNGs
composited onto white, hidden RGB under alpha 0 invisible. Size limits: read from the header, a
20000x20000 px PNG of a few KB rejected before decoding.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

tf = pytest.importorskip("tensorflow")

from components import image_decode as D  # noqa: E402
from serving.images import ImageLimits, displayed_rgb  # noqa: E402
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
