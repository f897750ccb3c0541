"""`simsiam-tfx search`: the nearest neighbours of a query in an embedding index (cosine)."""

from __future__ import annotations

import argparse
import os
import sys

HELP = "find the images of an index most similar to a query image or embedding (cosine similarity)"
DESCRIPTION = """\
Prints the -k rows of --index with the highest cosine similarity to the query: --query, an image that
--model embeds with its `embed_images` signature, or --query-embedding, a saved numpy vector (.npy,
[D] or [1, D]; no model and no TensorFlow needed). --index is the .npz that `simsiam-tfx embed`
writes (searched by brute force), or the pipeline's embedding index (OUT/summary.json names it as
`embedding_index`): its folder also holds the faiss index (index.faiss, index_meta.json) searched
here, which also stores the embeddings, and the .npz has ids, labels, splits and thumbnails. --model
must be the model that built the index (same as for embed: a SavedModel folder,
http://HOST:8501/v1/models/NAME or grpc://HOST:8500/NAME).
"""


class SearchError(Exception):
    """A one-line reason to refuse, and the exit status (2: bad input, 1: the model failed)."""

    def __init__(self, message: str, status: int = 2):
        super().__init__(message)
        self.status = status


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", required=True, metavar="FILE.npz", help="embedding index")
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--query", metavar="IMAGE", help="a JPEG or PNG file (needs --model)")
    query.add_argument("--query-embedding", metavar="FILE.npy", help="an embedding from the index's model")
    p.add_argument("--model", metavar="DIR_OR_URL", help="SavedModel folder or TF Serving URL (with --query)")
    p.add_argument("-k", type=int, default=5, help="number of neighbours (default: %(default)s)")
    p.add_argument("--split", help="search only the rows of this split (e.g. train), for the pipeline's index")
    p.add_argument("--plot", metavar="OUT.png", help="also draw the query image and its neighbours")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request to a server")


def load_index(path: str):
    """(EmbeddingIndex table, AnnIndex or None when no faiss index lies beside it); SearchError when unusable."""
    from serving.ann import ANN_FILE, AnnIndex
    from serving.index import EmbeddingIndex, IndexFileError

    try:
        folder = os.path.dirname(os.path.abspath(path))
        ann = AnnIndex.load(folder) if os.path.isfile(os.path.join(folder, ANN_FILE)) else None
        table = EmbeddingIndex.load(path, ann=ann)  # the pipeline's .npz: its vectors come from `ann`
    except IndexFileError as err:
        raise SearchError(str(err)) from err
    if not len(table):
        raise SearchError(f"index {path} is empty: it has no row to search")
    if ann is not None and (len(ann), ann.meta.dimension) != table.embeddings.shape:
        raise SearchError(
            f"{ANN_FILE} beside {path} holds {len(ann)} x {ann.meta.dimension} embeddings but "
            f"the table {table.embeddings.shape[0]} x {table.embeddings.shape[1]}: rebuild the index"
        )
    return table, ann


def embedding_query(path: str, dimension: int):
    """float32 `[1, D]` from a .npy file; SearchError when it is not one finite vector of `dimension`."""
    import numpy as np

    try:
        vector = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise SearchError(f"query embedding {path}: not a numpy .npy array ({str(err).splitlines()[0]})") from err
    if (
        vector.ndim not in (1, 2)
        or (vector.ndim == 2 and len(vector) != 1)
        or not np.issubdtype(vector.dtype, np.number)
    ):
        raise SearchError(
            f"query embedding {path}: need one vector [D] or [1, D], got {vector.dtype} {list(vector.shape)}"
        )
    vector = vector.reshape(1, -1).astype(np.float32)
    if vector.shape[1] != dimension:
        raise SearchError(
            f"query embedding {path} is {vector.shape[1]}-d but the index holds {dimension}-d "
            "embeddings: it comes from another model"
        )
    if not np.isfinite(vector).all() or not np.abs(vector).sum():
        raise SearchError(f"query embedding {path} is zero or not finite")
    return vector


def image_query(args: argparse.Namespace, table):
    """float32 `[1, D]`: --query embedded by --model; SearchError for a bad image or another model."""
    from serving import EmbeddingClient, ServingError, open_backend
    from serving.files import read_file
    from serving.images import check_image_bytes

    query, problem = read_file(args.query)
    if query is not None and (bad := check_image_bytes(query)):
        problem = bad.reason
    if problem:
        raise SearchError(f"query {args.query}: {problem}")
    try:
        backend = open_backend(args.model, timeout=args.timeout)
        fingerprint = backend.fingerprint() if hasattr(backend, "fingerprint") else ""
        if fingerprint and table.model_fingerprint and fingerprint != table.model_fingerprint:
            backend.close()
            raise SearchError(
                f"{args.index} was built by another model ({table.model or 'unknown'}, fingerprint "
                f"{table.model_fingerprint}) than {args.model} ({fingerprint}): rebuild the index "
                "or pass the model that built it"
            )
        result = EmbeddingClient(backend, batch_size=1).embed([query])
        backend.close()
    except ServingError as err:
        raise SearchError(str(err), status=1) from err
    if result.failed:
        raise SearchError(f"query {args.query}: {result.failed[0][1]}", status=1)
    embedding = result["embedding"]
    if embedding.shape[1] != table.embeddings.shape[1]:
        raise SearchError(
            f"the index holds {table.embeddings.shape[1]}-d embeddings but {args.model} gives "
            f"{embedding.shape[1]}-d ones: the index was built with another model"
        )
    return embedding


def split_rows(table, split: str | None):
    """int64 row numbers of `split` in the table, or None (all rows) without one; SearchError when none match."""
    import numpy as np

    if not split:
        return None
    if table.splits is None:
        raise SearchError("the index has no splits; drop --split")
    allowed = np.flatnonzero(table.splits == split)
    if not len(allowed):
        raise SearchError(f"the index has no row of split {split!r} (it has {sorted(set(table.splits.tolist()))})")
    return allowed


def search(table, ann, query, k: int, allowed):
    """(rows int64 `[k']`, cosines `[k']`) among `allowed` rows (None: all): the faiss index when there
    is one, else brute force (the .npz of `simsiam-tfx embed`)."""
    from serving.index import nearest

    if ann is not None:
        rows, sims = ann.search(query, k, rows=allowed)
        found = rows[0] >= 0  # IVF: fewer than k rows in the cells it scanned
        return rows[0][found], sims[0][found]
    rows, sims = nearest(table.embeddings if allowed is None else table.embeddings[allowed], query, k)
    return (rows[0] if allowed is None else allowed[rows[0]]), sims[0]


def run(args: argparse.Namespace) -> int:
    if args.k < 1:
        print("error: -k must be >= 1", file=sys.stderr)
        return 2
    if args.query and not args.model:
        print(
            "error: --query needs --model (the model that built the index); or give --query-embedding", file=sys.stderr
        )
        return 2
    if args.plot and not args.query:
        print("error: --plot draws the query image: give --query, not --query-embedding", file=sys.stderr)
        return 2
    try:
        table, ann = load_index(args.index)
        allowed = split_rows(table, args.split)
        if args.query_embedding:
            query = embedding_query(args.query_embedding, table.embeddings.shape[1])
        else:
            query = image_query(args, table)
        rows, sims = search(table, ann, query, args.k, allowed)
    except SearchError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.status
    searched = len(table) if allowed is None else len(allowed)
    everything = f" (all of them: -k {args.k} is more than the {searched} rows searched)" if args.k > searched else ""
    print(f"{len(rows)} nearest of {searched} to {args.query or args.query_embedding}{everything}:")
    print(f"{'rank':>4}  {'cosine':>7}  {'class':<12}  path")
    for rank, (row, sim) in enumerate(zip(rows, sims), start=1):
        print(f"{rank:>4}  {sim:>7.4f}  {table.class_of(row) or '-':<12}  {table.paths[row]}")
    if args.plot:
        from serving.plot import plot_neighbours

        plot_neighbours(args.query, table, rows, sims, args.plot)
        print(f"wrote {args.plot}")
    return 0
