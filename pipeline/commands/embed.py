"""`simsiam-tfx embed`: image files -> an .npz of paths and embeddings, through any serving back end."""

from __future__ import annotations

import argparse
import sys

HELP = "embed image files (or folders of them) with the serving model into an .npz index"
DESCRIPTION = """\
Embeds every file given (folders: every file below them) with the model's `embed_images`
signature and writes FILE.npz with `paths` and `embeddings` (float32 [N, D]).
Files that are not JPEG/PNG images, or that the model rejects, are listed with the reason
and skipped; the rest are still embedded. Every file is counted once: a second name for one file
(another spelling, a link) is skipped as "the same file as ...", linked folders are walked, and
hidden entries (names starting with '.') are ignored and counted. A progress bar (tqdm, on stderr when it is a terminal)
follows the files, and a last line gives the counts and the images per second.

--model is one of:
  DIR                                   a SavedModel folder, or a folder of numbered versions (the highest is used)
  http://HOST:8501/v1/models/NAME       TF Serving's REST API
  grpc://HOST:8500/NAME                 TF Serving's gRPC API (append /versions/N to pin a version)
"""

READ_CHUNK = 256  # files read into memory at a time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("--model", required=True, metavar="DIR_OR_URL", help="SavedModel folder or TF Serving URL")
    p.add_argument("--output", required=True, metavar="FILE.npz", help="where to write the embeddings")
    p.add_argument("--batch-size", type=int, default=64, help="images per request (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request to a server")


def rate_line(embedded: int, skipped: int, seconds: float) -> str:
    """The last line of `embed`: counts and throughput (embedded images per wall-clock second)."""
    rate = embedded / seconds if seconds > 0 else float("inf")
    return f"embedded {embedded} images, skipped {skipped}, in {seconds:.1f}s ({rate:.1f} images/s)"


def run(args: argparse.Namespace) -> int:
    from pipeline.preflight import PreflightError, check_output_file

    try:  # before TensorFlow loads and any image is embedded
        check_output_file("--output", args.output)
    except PreflightError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    import time

    import numpy as np
    from tqdm import tqdm

    from serving import EmbeddingClient, ServingError, open_backend
    from serving.files import chunks, collect_files, read_file
    from serving.index import EmbeddingIndex

    if args.batch_size < 1:
        print("error: --batch-size must be >= 1", file=sys.stderr)
        return 2
    files, skipped, hidden = collect_files(args.paths)
    try:
        backend = open_backend(args.model, timeout=args.timeout)
    except ServingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    client = EmbeddingClient(backend, batch_size=args.batch_size)
    paths, embeddings = [], []
    start = time.perf_counter()
    # disable=None: a bar on a terminal, nothing in logs and pipes (the last line still says how it went)
    progress = tqdm(total=len(files), unit="img", file=sys.stderr, disable=None, desc="embed")
    try:
        for chunk in chunks(files, READ_CHUNK):
            readable, data = [], []
            for path in chunk:
                content, problem = read_file(path)
                if problem:
                    skipped.append((path, problem))
                else:
                    readable.append(path)
                    data.append(content)
            result = client.embed(data)
            paths.extend(readable[i] for i in result.indices)
            if result.indices:
                embeddings.append(result["embedding"])
            skipped.extend((readable[i], reason) for i, reason in result.failed)
            progress.update(len(chunk))
    except ServingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        progress.close()
        backend.close()
    seconds = time.perf_counter() - start

    for path, reason in skipped:
        print(f"skipped {path}: {reason}")
    if hidden:
        print(f"ignored {len(hidden)} hidden entr{'y' if len(hidden) == 1 else 'ies'} (names starting with '.')")
    if not paths:
        print(f"error: no image could be embedded ({len(skipped)} skipped); {args.output} not written", file=sys.stderr)
        return 1
    fingerprint = backend.fingerprint() if hasattr(backend, "fingerprint") else ""
    index = EmbeddingIndex(
        paths=np.array(paths),
        embeddings=np.concatenate(embeddings).astype(np.float32),
        model=args.model,
        model_fingerprint=fingerprint,
    )
    try:
        index.save(args.output)
    except OSError as err:  # a full disk, a size limit: the previous file, if any, is still whole
        print(
            f"error: cannot write {args.output}: {err.strerror or err}; the previous file, if any, is unchanged",
            file=sys.stderr,
        )
        return 1
    print(
        f"wrote {args.output}: {len(paths)} embeddings of dimension {index.embeddings.shape[1]}, {len(skipped)} skipped"
    )
    print(rate_line(len(paths), len(skipped), seconds))
    return 0
