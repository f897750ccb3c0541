"""Peak memory of decoding one request's image, for the worst images the limits accept.

    python -m benchmarks.decode_memory
    python -m benchmarks.decode_memory --model runs/cpu/serving/1700000000   # through `embed_images`

Each case runs in a fresh process: it generates its image in code, runs the decode once on a small
image of the same format (tracing, TensorFlow's one-time allocations), then measures one request: the
peak resident memory the call adds (VmHWM after minus VmRSS before, the peak reset through
/proc/self/clear_refs, as benchmarks/search.py does). Two calls are measured per image:

- `graph`: what every serving signature runs on the bytes before the encoder, the Transform graph's
  `decode_batch` (components/transform.py: `decode_image`, then the resize to the 72 px stored square),
  or with `--model` the SavedModel's `embed_images` itself;
- `check`: `serving.images.check_image_bytes`, which the client (`embed`, `search`) and ingestion run
  before the graph.

The cases are the largest accepted images (`ImageLimits`: a JPEG up to `max_decoded_pixels` decodes at
full size, a larger one at reduced scale; a PNG up to `max_decoded_pixels`), issue 28's 12 KB 1-bit
PNG declaring 6324x6324 px (refused now: its row says what refusing costs), and an ordinary photo size.
Writes benchmarks/results/decode_memory.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.machine import cpu_model

RESULTS = Path(__file__).resolve().parent / "results" / "decode_memory.json"
# name -> (format, Pillow mode, width, height, what it stands for)
CASES = {
    "jpeg_500x375": ("JPEG", "RGB", 500, 375, "an ordinary photo"),
    "jpeg_4000x4000": ("JPEG", "RGB", 4000, 4000, "the largest JPEG decoded at full size (16 M px)"),
    "jpeg_6324x6324": ("JPEG", "RGB", 6324, 6324, "a JPEG at the 40 M px limit (decoded at 1/2)"),
    "png_rgba_4000x4000": ("PNG", "RGBA", 4000, 4000, "the largest PNG, with alpha (16 M px)"),
    "png_1bit_4000x4000": ("PNG", "1", 4000, 4000, "the largest PNG, 1-bit: a few KB"),
    "png_1bit_6324x6324": ("PNG", "1", 6324, 6324, "issue 28's 12 KB bomb (40 M px): refused"),
}


def make_image_bytes(fmt: str, mode: str, width: int, height: int) -> bytes:
    """A smooth gradient with a little noise (so JPEG and PNG compress as photos and drawings do), in
    `mode`; RGBA gets an alpha gradient, so the composite runs on every pixel."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    grey = ((x + y) / 2 + rng.normal(0, 4, (height, width)).astype(np.float32)).clip(0, 255).astype(np.uint8)
    if mode == "1":
        image = Image.fromarray(grey).convert("1")
    elif mode == "RGBA":
        image = Image.fromarray(np.stack([grey, grey[::-1], grey[:, ::-1], (x + 0 * y).astype(np.uint8)], -1), "RGBA")
    else:
        image = Image.fromarray(np.stack([grey, grey[::-1], grey[:, ::-1]], -1), "RGB")
    del grey
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {"compress_level": 1}))
    return buffer.getvalue()


def _memory_kb(field: str, source: str = "/proc/self/status") -> int:
    for line in Path(source).read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _peak_added_mb(call) -> tuple[float, str | None, float]:
    """(MB of resident memory `call()` adds at its peak, its error or None, seconds)."""
    import gc

    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    before = _memory_kb("VmRSS")
    start, error = time.perf_counter(), None
    try:
        call()
    except Exception as err:  # a refused image: what refusing costs is the figure
        error = (getattr(err, "message", None) or str(err)).splitlines()[0][:160]
    seconds = time.perf_counter() - start
    return round(max(0, _memory_kb("VmHWM") - before) / 1024, 1), error, round(seconds, 2)


def measure_case(name: str, model: str | None) -> dict:
    """One case in this process: {"graph_mb", "check_mb", their errors and seconds, "file_bytes"}."""
    import tensorflow as tf

    from components.transform import decode_batch
    from serving.images import check_image_bytes

    fmt, mode, width, height, _ = CASES[name]
    data = make_image_bytes(fmt, mode, width, height)
    warm = make_image_bytes(fmt, mode, 64, 48)
    if model:
        signature = tf.saved_model.load(model).signatures["embed_images"]

        def graph(images):
            return signature(images=images)["embedding"]
    else:
        graph = tf.function(lambda images: decode_batch(images, 72), input_signature=[tf.TensorSpec([None], tf.string)])
    graph(tf.constant([warm]))
    check_image_bytes(warm)
    request = tf.constant([data])
    graph_mb, graph_error, graph_s = _peak_added_mb(lambda: graph(request).numpy())
    check_mb, _, check_s = _peak_added_mb(lambda: check_image_bytes(data))
    refusal = check_image_bytes(data)
    return {
        "case": name,
        "what": CASES[name][4],
        "file_bytes": len(data),
        "graph_mb": graph_mb,
        "graph_s": graph_s,
        "graph_error": graph_error,
        "check_mb": check_mb,
        "check_s": check_s,
        "check_refusal": refusal.reason if refusal else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a serving SavedModel: measure its embed_images instead of the decode graph")
    parser.add_argument("--one", choices=sorted(CASES), help=argparse.SUPPRESS)  # the child process's case
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure_case(args.one, args.model)))
        return 0
    rows = []
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    for name in CASES:
        command = [sys.executable, "-m", "benchmarks.decode_memory", "--one", name]
        command += ["--model", args.model] if args.model else []
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
            return 1
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(
            f"{name:<20} {r['file_bytes']:>11,} B  graph +{r['graph_mb']:>7.1f} MB ({r['graph_s']:.2f}s)"
            f"  check +{r['check_mb']:>6.1f} MB  {'refused' if r['graph_error'] else 'accepted'}",
            flush=True,
        )
    result = {
        "command": "python -m benchmarks.decode_memory" + (f" --model {args.model}" if args.model else ""),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, {_memory_kb('MemTotal', '/proc/meminfo') / 2**20:.0f} GB",
        "measured": "graph" if not args.model else "embed_images",
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
