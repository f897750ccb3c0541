"""The one image decode of every TensorFlow graph: bytes -> the pixels a person sees, size-checked first.

`decode_image(encoded, limits)` is the only decode in the Transform graph (so in training data and in
all three serving signatures, which run that graph) and in ingestion's TensorFlow check. TF Serving runs
no Python, so everything below is TensorFlow ops on the bytes themselves:

1. Format from the magic bytes: JPEG (FF D8 FF) or PNG (the 8-byte signature); anything else fails with
   "Unknown image file format" (the contract of serving/images.py: JPEG and PNG only).
2. Width and height from the header, before anything is decoded: the JPEG SOF segment (ITU-T T.81
   B.2.2), the PNG IHDR chunk (PNG spec 11.2.2). Outside `ImageLimits` (serving/images.py, the limits
   ingestion uses) the op fails with an InvalidArgumentError naming the size and the limits, so a
   48 KB "decompression bomb" declaring 20000x20000 px costs microseconds, not 1.2 GB.
3. JPEG: the EXIF Orientation tag (0x0112, in IFD0 of the APP1 "Exif" segment; EXIF 2.32 4.6.4 and
   TIFF 6.0 section 2) is applied with transposes and flips, as every photo viewer and Pillow's
   `ImageOps.exif_transpose` do. Tags of other types than SHORT and values outside 1-8 mean "upright".
   PNG orientation (eXIf chunk) is not applied: browsers differ on it and cameras do not write it.
4. PNG: decoded with 4 channels (grey, palette + tRNS and 16-bit PNGs included) and composited onto a
   WHITE background (`BACKGROUND`): transparent pixels have no defined colour (editors store black,
   white or leftovers there), and white is what a web page, a document and an image viewer's default
   canvas show behind them, i.e. what the person who chose the photo saw.

`serving.images.displayed_rgb` is the Pillow twin (index thumbnails, benchmarks); the tests hold the two
to the same pixels.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from serving.images import BACKGROUND, ImageLimits, Problem

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PAD = 16  # zero bytes after the file, so reads past its end see zeros instead of failing
_MAX_SEGMENTS = 4096  # JPEG segments walked before giving up (a real file has < 30 before its SOF)
_MAX_IFD_ENTRIES = 256  # IFD0 entries searched for the orientation (cameras write < 50)
ORIENTATION_TAG = 0x0112
UNKNOWN, JPEG, PNG = 0, 1, 2


def _reader(encoded: tf.Tensor):
    """(byte(i) -> int64 scalar, n): bytes of `encoded` read at any int64 index; past the end: 0."""
    raw = tf.io.decode_raw(encoded, tf.uint8)
    n = tf.shape(raw, out_type=tf.int64)[0]
    padded = tf.cast(tf.concat([raw, tf.zeros([_PAD], tf.uint8)], 0), tf.int64)

    def byte(i):
        return tf.gather(padded, tf.clip_by_value(tf.cast(i, tf.int64), 0, n + _PAD - 1))

    return byte, n


def _jpeg_header(byte, n):
    """Walks the JPEG segments up to the first SOF: (width, height, start of the EXIF TIFF header or -1)."""

    def u16(i):
        return byte(i) * 256 + byte(i + 1)

    def cond(pos, done, width, height, tiff):
        return tf.logical_and(tf.logical_not(done), pos + 4 <= n)

    def body(pos, done, width, height, tiff):
        marker = byte(pos + 1)
        not_marker = tf.not_equal(byte(pos), 0xFF)
        fill = tf.equal(marker, 0xFF)
        standalone = ((marker >= 0xD0) & (marker <= 0xD8)) | tf.equal(marker, 0x01)
        end = tf.equal(marker, 0xDA) | tf.equal(marker, 0xD9)  # start of scan / end of image: no SOF
        sof = (
            (marker >= 0xC0)
            & (marker <= 0xCF)
            & tf.not_equal(marker, 0xC4)
            & tf.not_equal(marker, 0xC8)
            & tf.not_equal(marker, 0xCC)
        )
        length = u16(pos + 2)
        exif = (
            tf.equal(marker, 0xE1)
            & (tiff < 0)
            & tf.equal(byte(pos + 4), 0x45)
            & tf.equal(byte(pos + 5), 0x78)
            & tf.equal(byte(pos + 6), 0x69)
            & tf.equal(byte(pos + 7), 0x66)
            & tf.equal(byte(pos + 8), 0)
            & tf.equal(byte(pos + 9), 0)
        )
        segment = ~(fill | standalone | end | not_marker)
        tiff = tf.where(segment & exif, pos + 10, tiff)
        width = tf.where(segment & sof, u16(pos + 7), width)
        height = tf.where(segment & sof, u16(pos + 5), height)
        step = tf.where(fill, tf.constant(1, tf.int64), tf.where(standalone, tf.constant(2, tf.int64), 2 + length))
        done = not_marker | end | (segment & (sof | (length < 2)))
        return pos + step, done, width, height, tiff

    minus_one = tf.constant(-1, tf.int64)
    _, _, width, height, tiff = tf.while_loop(
        cond,
        body,
        (tf.constant(2, tf.int64), tf.constant(False), minus_one, minus_one, minus_one),
        maximum_iterations=_MAX_SEGMENTS,
    )
    return width, height, tiff


def _exif_orientation(byte, tiff):
    """The Orientation (1-8) in IFD0 of the TIFF structure starting at byte `tiff`; 1 when absent/invalid."""
    little = tf.equal(byte(tiff), 0x49) & tf.equal(byte(tiff + 1), 0x49)
    big = tf.equal(byte(tiff), 0x4D) & tf.equal(byte(tiff + 1), 0x4D)

    def u16(i):
        return tf.where(little, byte(i) + 256 * byte(i + 1), 256 * byte(i) + byte(i + 1))

    def u32(i):
        return tf.where(little, u16(i) + 65536 * u16(i + 2), 65536 * u16(i) + u16(i + 2))

    ifd = tiff + u32(tiff + 4)
    count = tf.minimum(u16(ifd), _MAX_IFD_ENTRIES)
    entries = ifd + 2 + 12 * tf.range(_MAX_IFD_ENTRIES, dtype=tf.int64)
    tags, types, values = u16(entries), u16(entries + 2), u16(entries + 8)  # byte() gathers vectors too
    match = tf.equal(tags, ORIENTATION_TAG) & tf.equal(types, 3) & (tf.range(_MAX_IFD_ENTRIES, dtype=tf.int64) < count)
    value = tf.reduce_max(tf.where(match, values, tf.zeros_like(values)))
    valid = (little | big) & tf.equal(u16(tiff + 2), 42) & (tiff >= 0) & (value >= 1) & (value <= 8)
    return tf.where(valid, value, tf.constant(1, tf.int64))


def read_header(encoded: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Scalar string -> (format UNKNOWN/JPEG/PNG, width, height, EXIF orientation 1-8), all int64 scalars,
    from the bytes alone (nothing is decoded). Width/height -1: no JPEG SOF before the scan."""
    byte, n = _reader(encoded)
    is_jpeg = tf.equal(byte(0), 0xFF) & tf.equal(byte(1), 0xD8) & tf.equal(byte(2), 0xFF)
    is_png = tf.reduce_all(tf.stack([tf.equal(byte(i), c) for i, c in enumerate(_PNG_SIGNATURE)]))
    kind = tf.where(
        is_jpeg,
        tf.constant(JPEG, tf.int64),
        tf.where(is_png, tf.constant(PNG, tf.int64), tf.constant(UNKNOWN, tf.int64)),
    )

    def jpeg():
        width, height, tiff = _jpeg_header(byte, n)
        orientation = tf.cond(tiff >= 0, lambda: _exif_orientation(byte, tiff), lambda: tf.constant(1, tf.int64))
        return width, height, orientation

    def png():
        def u32(i):
            return ((byte(i) * 256 + byte(i + 1)) * 256 + byte(i + 2)) * 256 + byte(i + 3)

        ihdr = tf.equal(byte(12), 0x49) & tf.equal(byte(13), 0x48) & tf.equal(byte(14), 0x44) & tf.equal(byte(15), 0x52)
        minus_one = tf.constant(-1, tf.int64)
        return tf.where(ihdr, u32(16), minus_one), tf.where(ihdr, u32(20), minus_one), tf.constant(1, tf.int64)

    width, height, orientation = tf.cond(is_jpeg, jpeg, png)
    return kind, width, height, orientation


def orient(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """[H, W, C] as stored -> as displayed for EXIF orientation 1-8: 5-8 transpose first, then 2, 3, 6, 7
    flip left-right and 3, 4, 7, 8 flip top-bottom (6 = 90 degrees clockwise, 8 = counter-clockwise)."""
    image = tf.cond(orientation >= 5, lambda: tf.transpose(image, [1, 0, 2]), lambda: image)
    flip_lr = tf.reduce_any(tf.equal(orientation, tf.constant([2, 3, 6, 7], tf.int64)))
    flip_ud = tf.reduce_any(tf.equal(orientation, tf.constant([3, 4, 7, 8], tf.int64)))
    image = tf.cond(flip_lr, lambda: tf.reverse(image, [1]), lambda: image)
    return tf.cond(flip_ud, lambda: tf.reverse(image, [0]), lambda: image)


def composite(rgba: tf.Tensor) -> tf.Tensor:
    """uint8 [H, W, 4] -> uint8 [H, W, 3] over `BACKGROUND` (alpha 255 keeps the pixel exactly, 0 gives
    the background). Straight (not premultiplied) alpha, as PNG stores it (PNG spec 12.4)."""
    pixels = tf.cast(rgba, tf.float32)
    alpha = pixels[..., 3:] / 255.0
    mixed = pixels[..., :3] * alpha + tf.constant(BACKGROUND, tf.float32) * (1.0 - alpha)
    return tf.cast(tf.clip_by_value(tf.round(mixed), 0.0, 255.0), tf.uint8)


def decode_image(encoded: tf.Tensor, limits: ImageLimits = ImageLimits()) -> tf.Tensor:
    """Encoded JPEG/PNG bytes (a scalar string) -> uint8 [H, W, 3] as displayed (see the module docstring).

    Raises (when the graph runs) InvalidArgumentError "Unknown image file format ..." for other bytes and
    "image size WxH is outside the limits ..." before decoding an image outside `limits`; a damaged file
    fails in TensorFlow's decoder as before."""
    kind, width, height, orientation = read_header(encoded)
    # The first bytes as decimal numbers: raw bytes in the message would make it invalid UTF-8, which
    # Python (and a gRPC status) cannot decode (found by benchmarks/fuzz.py).
    head = tf.io.decode_raw(tf.strings.substr(encoded, 0, tf.minimum(8, tf.strings.length(encoded))), tf.uint8)
    known = tf.Assert(
        tf.not_equal(kind, UNKNOWN),
        [
            tf.strings.join(
                [
                    "Unknown image file format: only JPEG and PNG are accepted (the ",
                    tf.strings.as_string(tf.strings.length(encoded)),
                    " bytes start with ",
                    tf.strings.reduce_join(tf.strings.as_string(tf.cast(head, tf.int32)), separator=" "),
                    ")",
                ]
            )
        ],
    )
    with tf.control_dependencies([known]):
        inside = (
            (tf.minimum(width, height) >= limits.min_side)
            & (tf.maximum(width, height) <= limits.max_side)
            & (width * height <= limits.max_pixels)
        )
        size = tf.strings.join([tf.strings.as_string(width), "x", tf.strings.as_string(height)])
        message = tf.where(
            width < 0,
            "corrupt image: no width and height in its header (JPEG SOF / PNG IHDR)",
            tf.strings.join(
                [
                    "image size ",
                    size,
                    f" px is outside the limits ({limits.describe()}) read from its header; nothing was decoded",
                ]
            ),
        )
        sized = tf.Assert(inside, [message])
    with tf.control_dependencies([sized]):
        return tf.cond(
            tf.equal(kind, PNG),
            lambda: composite(tf.io.decode_png(encoded, channels=4)),
            lambda: orient(tf.io.decode_jpeg(encoded, channels=3), orientation),
        )


@functools.lru_cache(maxsize=8)
def _eager_decoder(limits: ImageLimits):
    return tf.function(
        lambda data: tf.shape(decode_image(data, limits)), input_signature=[tf.TensorSpec([], tf.string)]
    )


def decode_problem(data: bytes, limits: ImageLimits = ImageLimits()) -> Problem | None:
    """None when `decode_image` (the graphs' decode) accepts `data`, else why not (ingestion's last check)."""
    import re

    try:
        _eager_decoder(limits)(tf.constant(data))
    except tf.errors.OpError as err:
        message = re.sub(r"\{\{[^}]*\}\}\s*", "", err.message).strip()
        message = message.replace("assertion failed: [", "").splitlines()[0].rstrip("]")
        return Problem("tensorflow_decode", f"TensorFlow cannot decode it: {message}")
    return None
