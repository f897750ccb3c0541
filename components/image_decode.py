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
4. Decode memory is bounded by `ImageLimits.max_decoded_pixels` (checked from the header too): a larger
   JPEG is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) and a larger PNG is refused, so no
   accepted file, however small, makes the decode allocate more than that many pixels. Images at or
   below it decode at full size, as before (pixel for pixel, but for the 1-bit PNGs of point 5).
5. PNG: an opaque one decoded with 3 channels; one with transparency (an alpha channel or a tRNS chunk:
   grey, palette and RGB + tRNS included, 16-bit too) with 4 channels and composited onto a WHITE
   background (`BACKGROUND`): transparent pixels have no defined colour (editors store black, white or
   leftovers there), and white is what a web page, a document and an image viewer's default canvas
   show behind them, i.e. what the person who chose the photo saw. The composite is integer
   arithmetic, in blocks of rows (`composite`), so it adds no full-size float copy.

`serving.images.displayed_rgb` is the Pillow twin (index thumbnails, benchmarks); the tests hold the two
to the same pixels.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from serving.images import BACKGROUND, ImageLimits, Problem

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MAX_SEGMENTS = 4096  # JPEG segments walked before giving up (a real file has < 30 before its SOF)
_MAX_IFD_ENTRIES = 256  # IFD0 entries searched for the orientation (cameras write < 50)
_COMPOSITE_ROWS = 256  # rows composited at a time: a block's temporaries stay small next to the image
ORIENTATION_TAG = 0x0112
UNKNOWN, JPEG, PNG = 0, 1, 2


def _reader(encoded: tf.Tensor):
    """(byte(i) -> int64, n): bytes of `encoded` read at any int64 index (scalar or vector); outside
    the file: 0."""
    raw = tf.concat([tf.io.decode_raw(encoded, tf.uint8), [0]], 0)  # [0] for an empty file
    n = tf.shape(raw, out_type=tf.int64)[0] - 1

    # The bytes stay uint8 and only the gathered ones become int64: the file cast whole to int64 took 8
    # bytes per file byte, more than decoding a large PNG.
    def byte(i):
        i = tf.cast(i, tf.int64)
        value = tf.cast(tf.gather(raw, tf.clip_by_value(i, 0, n)), tf.int64)
        return tf.where((i >= 0) & (i < n), value, tf.zeros_like(value))

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


def _composite_rows(rgba: tf.Tensor) -> tf.Tensor:
    """uint8 [..., 4] -> uint8 [..., 3]: round(rgb * a/255 + background * (1 - a/255)) in integers,
    floor((rgb * a + background * (255 - a) + 127) / 255). Exact: x/255 is never an integer plus 1/2
    (255 is odd), so this is the float formula's rounding; the largest sum, 255 * 255 + 127, fits uint16."""
    pixels = tf.cast(rgba, tf.uint16)
    alpha = pixels[..., 3:]
    background = tf.constant(BACKGROUND, tf.uint16)
    mixed = pixels[..., :3] * alpha + background * (tf.constant(255, tf.uint16) - alpha) + tf.constant(127, tf.uint16)
    return tf.cast(mixed // tf.constant(255, tf.uint16), tf.uint8)


def composite(rgba: tf.Tensor) -> tf.Tensor:
    """uint8 [H, W, 4] -> uint8 [H, W, 3] over `BACKGROUND` (alpha 255 keeps the pixel exactly, 0 gives
    the background). Straight (not premultiplied) alpha, as PNG stores it (PNG spec 12.4).

    In blocks of `_COMPOSITE_ROWS` rows, one at a time, so besides the decoded image, the blocks and
    their concatenation (4 + 3 + 3 bytes a pixel) only one block's temporaries exist; the whole image
    in float32 made several float copies of every pixel (issue 28's decompression bomb)."""
    blocks = (tf.shape(rgba)[0] + _COMPOSITE_ROWS - 1) // _COMPOSITE_ROWS

    def body(i, done):
        return i + 1, done.write(i, _composite_rows(rgba[i * _COMPOSITE_ROWS : (i + 1) * _COMPOSITE_ROWS]))

    empty = tf.TensorArray(tf.uint8, size=blocks, infer_shape=False, element_shape=tf.TensorShape([None, None, 3]))
    _, done = tf.while_loop(lambda i, _: i < blocks, body, (tf.constant(0), empty), parallel_iterations=1)
    return done.concat()


def _png_has_alpha(byte, n) -> tf.Tensor:
    """Whether a PNG carries transparency (bool scalar): colour type 4 or 6 (grey or RGB with alpha,
    IHDR byte 9) or a tRNS chunk before the image data (PNG spec 11.3.2.1). Decoding an opaque PNG
    with 4 channels is not only wasteful: TensorFlow fills the alpha of a 1-, 2- or 4-bit grey PNG
    with 1, not 255 (libpng's filler at the file's bit depth), which made such a PNG almost white."""

    def u32(i):
        return ((byte(i) * 256 + byte(i + 1)) * 256 + byte(i + 2)) * 256 + byte(i + 3)

    def chunk_is(pos, name: bytes):
        return tf.reduce_all(tf.stack([tf.equal(byte(pos + 4 + k), c) for k, c in enumerate(name)]))

    def body(pos, done, found):
        idat, trns = chunk_is(pos, b"IDAT"), chunk_is(pos, b"tRNS")
        return pos + 12 + u32(pos), done | idat | trns, found | trns

    _, _, trns = tf.while_loop(
        lambda pos, done, _: tf.logical_not(done) & (pos + 12 <= n),
        body,
        (tf.constant(len(_PNG_SIGNATURE), tf.int64), tf.constant(False), tf.constant(False)),
        maximum_iterations=_MAX_SEGMENTS,
    )
    colour_type = byte(25)
    return tf.equal(colour_type, 4) | tf.equal(colour_type, 6) | trns


def _decode_png(encoded: tf.Tensor) -> tf.Tensor:
    """uint8 [H, W, 3] as displayed: an opaque PNG decoded with 3 channels, one with transparency with 4
    and composited onto `BACKGROUND`."""
    byte, n = _reader(encoded)
    return tf.cond(
        _png_has_alpha(byte, n),
        lambda: composite(tf.io.decode_png(encoded, channels=4)),
        lambda: tf.io.decode_png(encoded, channels=3),
    )


def _jpeg_ratio(width: tf.Tensor, height: tf.Tensor, max_decoded_pixels: int) -> tf.Tensor:
    """The DCT scaling denominator (1, 2, 4 or 8; int64 scalar): the smallest whose decoded image,
    ceil(width / r) x ceil(height / r) px, has at most `max_decoded_pixels` (8 when none has)."""
    ratios = tf.constant([1, 2, 4, 8], tf.int64)
    pixels = ((width + ratios - 1) // ratios) * ((height + ratios - 1) // ratios)
    fits = tf.concat([pixels[:3] <= max_decoded_pixels, [True]], 0)
    return tf.gather(ratios, tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int64))


def _decode_jpeg(encoded: tf.Tensor, ratio: tf.Tensor) -> tf.Tensor:
    """uint8 [H/r, W/r, 3] (rounded up) decoded at 1/`ratio` scale: libjpeg's DCT scaling, which reads
    every coefficient but transforms blocks to the smaller size, so only the smaller image is allocated."""

    # Nested conds, not tf.switch_case: tf.Transform cannot serialize a Case op's list of branches.
    def at(r: int):
        return lambda: tf.io.decode_jpeg(encoded, channels=3, ratio=r)

    return tf.cond(
        tf.equal(ratio, 1),
        at(1),
        lambda: tf.cond(tf.equal(ratio, 2), at(2), lambda: tf.cond(tf.equal(ratio, 4), at(4), at(8))),
    )


def decode_image(encoded: tf.Tensor, limits: ImageLimits = ImageLimits()) -> tf.Tensor:
    """Encoded JPEG/PNG bytes (a scalar string) -> uint8 [H, W, 3] as displayed (see the module docstring).

    Raises (when the graph runs) InvalidArgumentError "Unknown image file format ..." for other bytes,
    "image size WxH is outside the limits ..." before decoding an image outside `limits` and "PNG size
    WxH px is over the N pixels a PNG may have ..." for a PNG above `limits.max_decoded_pixels`; a damaged file
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
        png_too_large = tf.equal(kind, PNG) & (width * height > limits.max_decoded_pixels)
        size = tf.strings.join([tf.strings.as_string(width), "x", tf.strings.as_string(height)])
        message = tf.where(
            width < 0,
            "corrupt image: no width and height in its header (JPEG SOF / PNG IHDR)",
            tf.where(
                inside,
                tf.strings.join(
                    [
                        "PNG size ",
                        size,
                        f" px is over the {limits.max_decoded_pixels:,} pixels a PNG may have (a PNG cannot be "
                        f"decoded at reduced scale; {limits.describe()} for JPEG) read from its header; "
                        "nothing was decoded",
                    ]
                ),
                tf.strings.join(
                    [
                        "image size ",
                        size,
                        f" px is outside the limits ({limits.describe()}) read from its header; nothing was decoded",
                    ]
                ),
            ),
        )
        sized = tf.Assert(inside & ~png_too_large, [message])
    with tf.control_dependencies([sized]):
        return tf.cond(
            tf.equal(kind, PNG),
            lambda: _decode_png(encoded),
            lambda: orient(_decode_jpeg(encoded, _jpeg_ratio(width, height, limits.max_decoded_pixels)), orientation),
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
