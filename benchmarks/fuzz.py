"""Coverage-guided fuzzing (atheris, i.e. libFuzzer for Python) of the code that reads strangers' bytes.

    python -m benchmarks.fuzz --seconds 300              # both targets, 300 s each
    python -m benchmarks.fuzz --target graph --seconds 60

Targets (each in its own process, seeded with generated JPEG/PNG files: EXIF orientations, alpha,
16-bit, CMYK, a decompression-bomb header; plus real photos from --data-dir when it exists):
- `bytes`: `serving.images.check_image_bytes` (Pillow + the hand-written JPEG/PNG structure walks),
  `serving.images.displayed_rgb` on what it accepts, and the client's request building
  (`EmbeddingClient.predict` batching and bisecting, `rest_json.build_predict_body` + JSON) on the
  input cut into several images. Pillow's and the project's Python are instrumented (coverage-guided).
  Allowed outcome: a `Problem` or None; any exception is a crash.
- `graph`: `components.image_decode.decode_image` (the in-graph header, EXIF and limits parsing and
  TensorFlow's decoders), run as the compiled tf.function serving runs, with the default limits and
  again with `max_decoded_pixels` 4096, so the seeds also take the reduced-scale JPEG decode and the
  PNG refusal; the decoded pixels are checked against that bound. Graph ops are not Python, so
  this target is mutation-driven (libFuzzer sees no coverage from the graph). Allowed outcome: pixels
  within the limits, or `tf.errors.InvalidArgumentError`; anything else is a crash.
libFuzzer also stops on an input running longer than --timeout s (a hang) or on memory above
--rss-limit-mb. Output: one line per target, `target=... executions=N seconds=S crashes=K`, and
`crash file: ...` for a reproducer (rerun it with `--reproduce FILE`). Exit status 1 on any crash.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

TARGETS = ("bytes", "graph")
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "flowers" / "flower_photos"


def seed_images() -> dict[str, bytes]:
    """Small generated files covering the cases the parsers branch on."""
    import numpy as np
    from PIL import Image

    def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
        out = io.BytesIO()
        image.save(out, fmt, **kwargs)
        return out.getvalue()

    y, x = np.mgrid[0:24, 0:32]
    rgb = Image.fromarray(np.stack([x * 8, y * 10, (x + y) * 4], -1).astype(np.uint8))
    seeds = {
        "plain.jpg": encode(rgb, "JPEG"),
        "plain.png": encode(rgb, "PNG"),
        "progressive.jpg": encode(rgb, "JPEG", progressive=True),
        "cmyk.jpg": encode(rgb.convert("CMYK"), "JPEG"),
        "gray.png": encode(rgb.convert("L"), "PNG"),
        "palette.png": encode(rgb.convert("P"), "PNG"),
        "rgba.png": encode(rgb.convert("RGBA"), "PNG"),
        "la.png": encode(rgb.convert("LA"), "PNG"),
        "gray16.png": encode(Image.fromarray((x * 2000).astype(np.uint16)), "PNG"),
    }
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        seeds[f"exif{orientation}.jpg"] = encode(rgb, "JPEG", exif=exif.tobytes())
    bomb = bytearray(seeds["plain.png"])
    bomb[16:24] = (20000).to_bytes(4, "big") * 2  # IHDR claims 20000x20000, with a correct checksum
    bomb[29:33] = zlib.crc32(bytes(bomb[12:29])).to_bytes(4, "big")
    seeds["bomb_header.png"] = bytes(bomb)
    return seeds


def write_corpus(folder: Path, data_dir: Path | None, real: int = 6) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    seeds = seed_images()
    if data_dir and data_dir.is_dir():
        photos = sorted(data_dir.glob("*/*.jpg"))[:: max(1, len(list(data_dir.glob("*/*.jpg"))) // real)][:real]
        seeds.update({f"real_{i}.jpg": p.read_bytes() for i, p in enumerate(photos)})
    for name, data in seeds.items():
        (folder / name).write_bytes(data)
    return len(seeds)


# ---------------------------------------------------------------- the targets (run in the child process)


class _RestBackend:
    """A back end that builds and serialises the REST request as `RestBackend` does, then answers zeros."""

    description = "fuzz stand-in"

    def predict(self, signature, inputs, output_names=()):
        import numpy as np

        from serving import rest_json

        body = json.dumps(rest_json.build_predict_body(signature, inputs))
        rows = len(next(iter(inputs.values())))
        if b"\xff\xd8" not in body.encode() and rows > 1 and len(body) % 7 == 0:
            from serving.backends import InvalidInputError  # exercise the client's bisection too

            raise InvalidInputError("rejected by the stand-in")
        return {"embedding": np.zeros((rows, 4), np.float32)}


def _bytes_target():
    import atheris

    with atheris.instrument_imports(include=["PIL", "serving"]):
        from PIL import Image

        from serving import EmbeddingClient
        from serving.images import check_image_bytes, displayed_rgb

    Image.MAX_IMAGE_PIXELS = 40_000_000  # as ImageLimits; Pillow's own bomb check stays on
    client = EmbeddingClient(_RestBackend(), batch_size=3)

    def test_one_input(data: bytes) -> None:
        problem = check_image_bytes(data)
        if problem is None:
            with Image.open(io.BytesIO(data)) as image:
                displayed_rgb(image)
        provider = atheris.FuzzedDataProvider(data)
        count = provider.ConsumeIntInRange(1, 5)
        parts = [provider.ConsumeBytes(provider.ConsumeIntInRange(0, 4096)) for _ in range(count)]
        result = client.predict("embed_images", parts + [data])
        assert len(result.indices) + len(result.failed) == len(parts) + 1

    return test_one_input


def _graph_target():
    import atheris
    import tensorflow as tf

    with atheris.instrument_imports(include=["components.image_decode"]):
        from components.image_decode import decode_image, read_header
    from serving.images import ImageLimits

    limits = ImageLimits()
    # The same bytes again with a decode bound small enough for the seeds: a JPEG above it takes the
    # reduced-scale decode (1/2 to 1/8), a PNG above it is refused.
    small = ImageLimits(max_decoded_pixels=4096)

    def decoder(bound: ImageLimits):
        def shapes(data):
            _, width, height, _ = read_header(data)
            return tf.concat([tf.shape(decode_image(data, bound), out_type=tf.int64), [width, height]], 0)

        return tf.function(shapes, input_signature=[tf.TensorSpec([], tf.string)])

    decode, decode_small = decoder(limits), decoder(small)

    def test_one_input(data: bytes) -> None:
        for run, bound in ((decode, limits), (decode_small, small)):
            try:
                height, width, channels, stored_w, stored_h = run(tf.constant(data)).numpy().tolist()
            except tf.errors.InvalidArgumentError:
                continue  # the documented rejection
            smallest_side = limits.min_side if bound is limits else 1  # 1/8 of an 8 px side is 1
            assert channels == 3 and min(height, width) >= smallest_side and height * width <= bound.max_pixels
            # at most max_decoded_pixels, or the 1/8 scale decode (libjpeg's smallest) of a larger JPEG
            eighth = -(-stored_w // 8) * -(-stored_h // 8)
            assert height * width <= max(bound.max_decoded_pixels, eighth), (height, width, stored_w, stored_h)

    return test_one_input


def child(target: str, libfuzzer_args: list[str]) -> None:
    import atheris

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    test_one_input = {"bytes": _bytes_target, "graph": _graph_target}[target]()
    atheris.Setup([sys.argv[0], *libfuzzer_args], test_one_input)
    atheris.Fuzz()


# ---------------------------------------------------------------- the driver


def run_target(
    target: str, seconds: int, corpus: Path, artifacts: Path, timeout: int, rss_limit_mb: int, runs: int | None = None
) -> dict:
    """Runs one target for `seconds` in a child process, or until `runs` inputs ran (libFuzzer's `-runs`;
    `seconds` then only caps it): a fixed amount of work whatever the machine's load. Parses libFuzzer's
    counts; `seconds` in the result is the wall time it took."""
    work = Path(tempfile.mkdtemp(prefix=f"fuzz-{target}-"))
    started = time.perf_counter()
    args = [
        str(work),
        str(corpus),
        f"-max_total_time={seconds}",
        f"-timeout={timeout}",
        f"-rss_limit_mb={rss_limit_mb}",
        f"-artifact_prefix={artifacts}/{target}-",
        "-print_final_stats=1",
        *([f"-runs={runs}"] if runs else []),
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.fuzz", "--child", target, "--", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=seconds + 300,
    )
    log = done.stdout + done.stderr
    executions = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log) or re.findall(r"#(\d+)\s", log)
    crash_files = re.findall(r"Test unit written to (\S+)", log)
    return {
        "target": target,
        "executions": int(executions[-1]) if executions else 0,
        "seconds": round(time.perf_counter() - started, 1),
        "crashes": len(crash_files) or int(done.returncode != 0),
        "crash_files": crash_files,
        "returncode": done.returncode,
        "log_tail": log[-3000:] if done.returncode else "",
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fuzz", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", choices=(*TARGETS, "all"), default="all")
    parser.add_argument("--seconds", type=int, default=60, help="fuzzing time per target (default 60)")
    parser.add_argument("--runs", type=int, help="stop each target after this many inputs (--seconds still caps it)")
    parser.add_argument("--timeout", type=int, default=10, help="seconds one input may run before it is a hang")
    parser.add_argument("--rss-limit-mb", type=int, default=3072, help="memory above this is a crash")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="real photos for the seed corpus")
    parser.add_argument("--artifacts", type=Path, default=Path("runs/fuzz"), help="where crash reproducers go")
    parser.add_argument("--reproduce", type=Path, help="run one saved input through --target and raise")
    parser.add_argument("--child", choices=TARGETS, help=argparse.SUPPRESS)
    parser.add_argument("libfuzzer", nargs="*", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args.child, args.libfuzzer)
        return 0
    if args.reproduce:
        target = "bytes" if args.target == "all" else args.target
        {"bytes": _bytes_target, "graph": _graph_target}[target]()(args.reproduce.read_bytes())
        print(f"{args.reproduce}: no crash in target {target}")
        return 0
    args.artifacts.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        n_seeds = write_corpus(Path(tmp) / "corpus", args.data_dir)
        results = [
            run_target(
                t,
                args.seconds,
                Path(tmp) / "corpus",
                args.artifacts.resolve(),
                args.timeout,
                args.rss_limit_mb,
                args.runs,
            )
            for t in (TARGETS if args.target == "all" else (args.target,))
        ]
    for r in results:
        print(
            f"target={r['target']} executions={r['executions']} seconds={r['seconds']} crashes={r['crashes']} "
            f"seeds={n_seeds}"
        )
        for path in r["crash_files"]:
            print(f"  crash file: {path} (python -m benchmarks.fuzz --target {r['target']} --reproduce {path})")
        if r["crashes"]:
            print(r["log_tail"], file=sys.stderr)
    return 1 if any(r["crashes"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
