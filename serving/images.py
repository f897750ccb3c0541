"""The image contract: which encoded bytes this product accepts, checked before anything decodes them.

JPEG and PNG only, each side within `ImageLimits`, complete files (TensorFlow's decoders fail on
truncations that Pillow forgives). Ingestion (components/ingest) rejects files with these checks,
and the serving client (serving/client.py) refuses the same bytes before sending them, so what a
model is trained on and what it is asked about obey one rule. Pure Python + Pillow.
"""

from __future__ import annotations

import dataclasses
import io
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from serving.jpeg_scan import scan_problem

# What transparent pixels are composited onto, everywhere (components/image_decode.py says why white).
BACKGROUND = (255, 255, 255)

# Pillow calls JPEGs with a multi-picture extension (many phone cameras) "MPO"; they are plain JPEGs to TF.
ACCEPTED_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG"}


@dataclass(frozen=True)
class ImageLimits:
    """Sizes outside these bounds are rejected before decoding (decompression bombs, 1-pixel slivers).

    Defined once: ingestion (`IngestConfig`), the client's check (`check_image_bytes`) and the graphs'
    decode (`components.image_decode.decode_image`, hence every serving signature) use these values;
    the exported model carries them as constants of its graph. Sides in px, `max_pixels` = width x height
    as stored (the EXIF orientation does not change either).

    `max_decoded_pixels` bounds the decode's memory, which a size limit alone does not (a 12 KB 1-bit
    PNG can declare 40 M pixels): a JPEG above it is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT
    scaling, Pillow's `draft`), the largest image that fits, before it is shrunk to the stored square
    anyway; a PNG above it is refused, since PNG has no reduced decode. At or below it, every image
    decodes at full size as before. A decoded image then holds at most
    `max_decoded_pixels` x 4 bytes (RGBA), whatever the file's size."""

    min_side: int = 8
    max_side: int = 16_384
    max_pixels: int = 40_000_000
    max_decoded_pixels: int = 16_000_000

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ImageLimits:
        """The limits `values` names (a component's custom config; numbers may come as floats), the
        defaults for the others."""
        return cls(**{f.name: int(values[f.name]) for f in dataclasses.fields(cls) if f.name in values})

    def describe(self) -> str:
        return f"each side {self.min_side}-{self.max_side} px, at most {self.max_pixels:,} pixels"


@dataclass(frozen=True)
class Problem:
    """Why a file was rejected: `kind` is a short counter name, `reason` the text for the report."""

    kind: str
    reason: str


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_structure_problem(data: bytes) -> str | None:
    """libpng (what TensorFlow decodes PNGs with) needs every chunk up to IEND, with correct CRCs on the
    critical ones; Pillow decodes a PNG whose IEND is cut off, so walk the chunks here."""
    view, pos = memoryview(data), len(_PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length = int.from_bytes(view[pos : pos + 4], "big")
        chunk_type = bytes(view[pos + 4 : pos + 8])
        end = pos + 12 + length
        if end > len(data):
            return f"truncated PNG: chunk {chunk_type.decode('latin-1')} is cut off after {len(data)} bytes"
        critical = not chunk_type[0] & 0x20
        if critical and zlib.crc32(view[pos + 4 : end - 4]) != int.from_bytes(view[end - 4 : end], "big"):
            return f"corrupt PNG: bad checksum in chunk {chunk_type.decode('latin-1')}"
        if chunk_type == b"IEND":
            return None
        pos = end
    return f"truncated PNG: the file ends after {len(data)} bytes without an IEND chunk"


def _jpeg_structure_problem(data: bytes) -> str | None:
    """TensorFlow fails on a JPEG whose end-of-image marker is missing or damaged; Pillow decodes it when
    the image data is complete. Skip the segments before the first scan (an EXIF thumbnail has its own
    markers), then look for EOI (scan data cannot contain FF D9: its FF bytes are stuffed)."""
    pos = 2  # after SOI
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif marker == 0xDA:  # start of scan
            return None if data.find(b"\xff\xd9", pos) != -1 else "truncated JPEG: no end-of-image marker"
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            pos += 2
        else:
            pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return None  # not a layout we can follow: decoding decides


def png_size_reason(width: int, height: int, limits: ImageLimits) -> str:
    """Why a PNG of `width` x `height` px is refused although inside the size limits (its decode memory)."""
    return (
        f"PNG size {width}x{height} px is over the {limits.max_decoded_pixels:,} pixels a PNG may have "
        f"(a PNG cannot be decoded at reduced scale; {limits.describe()} for JPEG)"
    )


def check_image_bytes(data: bytes, limits: ImageLimits = ImageLimits()) -> Problem | None:
    """None when `data` is a JPEG or PNG of sensible size that decodes completely; else why not.

    The size is checked from the header before anything is decoded. A JPEG is decoded at 1/8 scale
    (Pillow's `draft`: all of its scan data is still read and checked), a PNG at full size (at most
    `limits.max_decoded_pixels`), so the check's memory is bounded as the graphs' decode is."""
    if not data:
        return Problem("empty", "empty file (0 bytes)")
    image_format = None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = ACCEPTED_FORMATS.get(image.format or "")
            if image_format is None:
                return Problem(
                    "unsupported_format", f"unsupported image format {image.format} (only JPEG and PNG are accepted)"
                )
            width, height = image.size
            if (
                min(width, height) < limits.min_side
                or max(width, height) > limits.max_side
                or width * height > limits.max_pixels
            ):
                return Problem("bad_dimensions", f"absurd dimensions {width}x{height} ({limits.describe()})")
            if image_format == "PNG" and width * height > limits.max_decoded_pixels:
                return Problem("bad_dimensions", png_size_reason(width, height, limits))
            structure = _png_structure_problem if image_format == "PNG" else _jpeg_structure_problem
            if problem := structure(data):
                return Problem("corrupt", problem)
            if image_format == "JPEG":  # every coefficient is still Huffman-decoded (and checked) at 1/8 scale
                image.draft(image.mode, (-(-width // 8), -(-height // 8)))
            image.load()
        if image_format == "JPEG" and (problem := scan_problem(data)):
            return Problem("corrupt", problem)
    except UnidentifiedImageError:
        return Problem(
            "not_an_image",
            f"not an image: the content ({len(data)} bytes, starting {bytes(data[:8])!r}) is no format Pillow knows",
        )
    except Image.DecompressionBombError as err:  # Pillow refuses to open beyond ~179M pixels
        pixels = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{int(pixels.group(1)):,} pixels" if pixels else str(err)
        return Problem("bad_dimensions", f"absurd dimensions: {size} ({limits.describe()})")
    except (OSError, SyntaxError, ValueError, EOFError) as err:  # what Pillow raises on broken data
        return Problem("corrupt", f"corrupt or truncated {image_format or 'image'}: {err}")
    return None


def displayed_rgb(image: Image.Image) -> Image.Image:
    """A Pillow image -> RGB as a person sees it: the Pillow twin of `components.image_decode.decode_image`.

    JPEG: `ImageOps.exif_transpose` applies the EXIF orientation. Any image with transparency (RGBA, LA,
    PA, a palette or grey/RGB image with a tRNS colour) is alpha-composited onto `BACKGROUND`; the RGB
    hidden under alpha 0 is never seen. PNG orientation is ignored, as in the graph."""
    if (image.format or "").upper() in ("JPEG", "MPO"):
        image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")
