"""Damaged JPEG scan data, found from libjpeg's own warnings.

A JPEG whose entropy-coded scan data is damaged but whose header and end marker are intact decodes
without an error in TensorFlow and in Pillow: libjpeg warns ("Corrupt JPEG data: 837 extraneous bytes
before marker 0xd9", "... premature end of data segment", "... bad Huffman code"), fills what it could
not decode with grey or smeared blocks, and carries on (image-rs/jpeg-decoder#169 is the same problem
elsewhere). Neither library hands those warnings to Python: Pillow's decoder drops them, TensorFlow's
lets libjpeg print them to the process's standard error (file descriptor 2). So `scan_problem` decodes
with TensorFlow while descriptor 2 points at a temporary file, and reads the warnings back.

What it cannot see: damage after which the Huffman decoder stays in step (a changed coefficient
amplitude, a byte swapped for one of the same code length) leaves a valid stream with other pixels;
no decoder can tell that from a photo. Damage that shifts the decoder out of step, the usual result of
a run of bad bytes, ends the scan early or late, and libjpeg says so.

The decode runs at 1/8 scale (`ratio=8`): libjpeg still Huffman-decodes every coefficient (which is
where the warnings come from) but transforms only the DC term, so the check costs a fraction of a full
decode and its memory is width x height x 3 / 64 bytes. Descriptor 2 belongs to the whole process: a
lock keeps checks from overlapping, and whatever else was written to it meanwhile (another thread's
log line) is written back to the real standard error afterwards.
"""

from __future__ import annotations

import os
import threading

from serving.stderr_capture import descriptor_2_captured

_LOCK = threading.Lock()
# libjpeg's messages for a scan that did not decode as written (jerror.h: JWRN_EXTRANEOUS_DATA,
# JWRN_HIT_MARKER, JWRN_HUFF_BAD_CODE, JWRN_MUST_RESYNC, JWRN_JPEG_EOF). Other warnings (an unknown JFIF
# revision, an odd Adobe marker) describe harmless header quirks of real cameras and are not counted.
_CORRUPT = ("Corrupt JPEG data", "Premature end of JPEG file")


_AVAILABLE: list[bool] = []  # whether TensorFlow imports, found once


def _tensorflow_available() -> bool:
    """Whether TensorFlow (and so its libjpeg) can be imported here; tried once, under the lock, so that
    threads checking at once do not see a half-imported module."""
    with _LOCK:
        if not _AVAILABLE:
            try:
                import tensorflow  # noqa: F401
            except ImportError:
                _AVAILABLE.append(False)
            else:
                _AVAILABLE.append(True)
        return _AVAILABLE[0]


def _libjpeg_messages(data: bytes) -> tuple[list[str], str | None]:
    """(lines written to descriptor 2 while TensorFlow decodes `data` at 1/8 scale, the decoder's error
    message or None). The lines of other writers are returned too; the caller sorts them out."""
    import tensorflow as tf

    error = None
    with _LOCK, descriptor_2_captured() as captured:
        try:
            tf.io.decode_jpeg(data, channels=3, ratio=8)
        except tf.errors.OpError as err:
            error = err.message.splitlines()[0] if err.message else type(err).__name__
    return b"".join(captured).decode("utf-8", "replace").splitlines(), error


def scan_problem(data: bytes) -> str | None:
    """None when libjpeg decodes the JPEG `data` (bytes) without a warning about its scan data, else the
    reason, e.g. "corrupt JPEG scan data: Corrupt JPEG data: 837 extraneous bytes before marker 0xd9".

    Call it on bytes already known to be a complete JPEG within the size limits (`check_image_bytes`
    does): it decodes them. Lines from other writers to standard error are passed through, except while
    a decode fails (then its lines are all taken as libjpeg's and TensorFlow's words on it). Where
    TensorFlow cannot be imported (the JAX pack of `benchmarks/gpu_pack.py`, a thin REST client) there
    is no libjpeg to ask: it returns None, and the other checks of `check_image_bytes` still run."""
    if not _tensorflow_available():
        return None
    lines, error = _libjpeg_messages(data)
    found = [line.strip() for line in lines if line.strip().startswith(_CORRUPT)]
    # When the decode failed, libjpeg's error line and TensorFlow's log line about it are this check's.
    others = [] if error else [line for line in lines if not line.strip().startswith(_CORRUPT)]
    if others:
        os.write(2, ("\n".join(others) + "\n").encode("utf-8", "replace"))
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        return f"corrupt JPEG scan data: {found[0]}{more}"
    if error is not None:
        return f"corrupt JPEG scan data: {error}"
    return None
