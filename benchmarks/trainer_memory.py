"""Peak memory of the steps that read examples, at 1x and 4x the data: it must not grow with the data.

    python -m benchmarks.trainer_memory --scale 1 4

Builds the data once under `--work`: the Flowers photos (`--photos`, default all), and for scale s, s
versions of each photo with ids of their own (the photo, its mirror image, and the photo turned by
90 and 180 degrees, each re-encoded as JPEG), split train/eval by the ExampleGen's hash of the id
(components/ingest/splits.py). Each version is written as ImageExampleGen writes it
(`make_example`, GZIP TFRecords) and as Transform writes it: the real `preprocessing_fn`, its
analyzers fitted on the first 64 photos (the pixel statistics change nothing here), applied through
its Transform graph to every example.

Then each step runs in a fresh process, at each scale, for `--steps` SimSiam steps:
- `simsiam`: the SimSiam Trainer's `run_fn` (the smoke recipe at `--image-size`, stored at its
  `stored_size`, streaming);
- `simsiam-cache`: the same with `cache_images` on, the split decoded into memory: the positive
  control, the old behaviour, which must break the bound, so the benchmark is seen to catch it;
- `probe`: the linear-probe Trainer's `run_fn` on that SimSiam model;
- `index`: the EmbeddingIndexer's `build_index` and faiss index on the probe's serving model.
Each prints its peak resident memory (VmHWM: pipeline/memory.py), side by side per scale, with the
decoded size of the train split (images x stored size^2 x 3 bytes). Bound: a step's peak at the
largest scale at most `--bound` (1.15) x its peak at the smallest. `--sample-size` and
`--shuffle-buffer` are set below the 1x split, so the samples are full at every scale (at the
defaults they grow until they reach 5,000 images).

Writes benchmarks/results/trainer_memory-<scales>.json ({"command", "device", "data", "results",
"bound", "within_bound", "control_breaks_bound"}). Exit status 1 when a streaming step breaks the
bound or the control does not. `--control-smallest-only` runs the control at the smallest scale alone
(the test's small version compares the two readers' training with it): its growth is then not
measured, and "control_breaks_bound" is null.
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

RESULTS_DIR = Path(__file__).resolve().parent / "results"
FLOWERS = Path(__file__).resolve().parents[2] / "shared" / "flowers" / "flower_photos"
STEPS = ("simsiam", "simsiam-cache", "probe", "index")
VERSIONS = ("photo", "mirror", "rot90", "rot180")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.trainer_memory", description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=int, nargs="+", default=[1, 4], help="data sizes, in versions per photo (1-4)")
    p.add_argument("--data-dir", default=str(FLOWERS), help="class folders of photos (default: Flowers)")
    p.add_argument("--photos", type=int, default=0, help="use N photos, round-robin over the classes (default 0: all)")
    p.add_argument(
        "--image-size", type=int, default=128, help="SimSiam view size in px (stored larger: the recipe's stored_size)"
    )
    p.add_argument("--steps", type=int, default=20, help="SimSiam training steps per run")
    p.add_argument("--profile", default="smoke", help="the recipe trained (pipeline/configs.py; default smoke)")
    p.add_argument("--sample-size", type=int, default=500, help="the samples' size (RunConfig.sample_size)")
    p.add_argument("--shuffle-buffer", type=int, default=1024, help="the streaming shuffle buffer, images")
    p.add_argument("--bound", type=float, default=1.15, help="largest allowed peak ratio, largest/smallest scale")
    p.add_argument("--only", nargs="+", choices=STEPS, default=list(STEPS), help="the steps to measure")
    p.add_argument(
        "--control-smallest-only",
        action="store_true",
        help="run simsiam-cache at the smallest scale only: it then compares the two readers' training on the "
        "same data, and no longer checks that the benchmark catches memory growth (for the test's small version)",
    )
    p.add_argument("--work", default="", help="folder for the data and outputs (default: a temporary folder)")
    p.add_argument("--out", default="", help="results JSON (default: benchmarks/results/trainer_memory-<scales>.json)")
    p.add_argument("--child", help=argparse.SUPPRESS)  # internal: run one step in this process
    p.add_argument("--child-dir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not 1 <= min(args.scale) <= max(args.scale) <= len(VERSIONS) or len(args.scale) < 2:
        p.error(f"--scale takes two or more values in 1..{len(VERSIONS)}, got {args.scale}")
    return args


def _version(data: bytes, version: str) -> bytes:
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
        turned = {
            "mirror": lambda: ImageOps.mirror(image),
            "rot90": lambda: image.transpose(Image.Transpose.ROTATE_90),
            "rot180": lambda: image.transpose(Image.Transpose.ROTATE_180),
        }[version]()
        out = io.BytesIO()
        turned.save(out, "JPEG", quality=90)
        return out.getvalue()


def build_data(args: argparse.Namespace, root: Path) -> dict:
    """Writes <root>/x<s>/{raw,transformed}/Split-{train,eval}/ and <root>/transform_graph; returns counts."""
    import tensorflow as tf
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    from benchmarks.image_data import list_images, select_subset
    from components import features as F
    from components import transform as T
    from components.examples import RAW_FEATURES
    from components.ingest.executor import make_example

    ids, labels, classes, _ = list_images(args.data_dir)
    if args.photos:  # round-robin over the classes, so a small version still has every class
        chosen = select_subset(labels, args.photos)
        ids, labels = [ids[i] for i in chosen], [labels[i] for i in chosen]
    stored = _recipe(args).simsiam.stored_size
    graph = root / "transform_graph"
    spec = {name: tf.io.FixedLenFeature([1], tf.as_dtype(dtype)) for name, dtype in RAW_FEATURES.items()}
    photos = [(Path(args.data_dir, i).read_bytes(), i, label) for i, label in zip(ids, labels)]
    if not graph.exists():
        rows = [
            {F.IMAGE: [data], F.LABEL: [label], F.CLASS_NAME: [classes[label].encode()], F.IMAGE_ID: [i.encode()]}
            for data, i, label in photos[:64]
        ]
        metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
        with tft_beam.Context(temp_dir=str(root / "tft_tmp")):
            fn = (rows, metadata) | tft_beam.AnalyzeDataset(lambda x: T.preprocessing_fn(x, {"stored_size": stored}))
            _ = fn | tft_beam.WriteTransformFn(str(graph))
    layer = tft.TFTransformOutput(str(graph)).transform_features_layer()
    counts = {}
    for scale in sorted(set(args.scale)):  # scale s holds versions 0 .. s-1 of every photo
        folder = root / f"x{scale}"
        counts[scale] = {"train": 0, "eval": 0}
        if (folder / "done").exists():
            counts[scale] = json.loads((folder / "done").read_text())
            continue
        writers = {
            (kind, split): tf.io.TFRecordWriter(str(_mkdir(folder / kind / f"Split-{split}") / "data.gz"), "GZIP")
            for kind in ("raw", "transformed")
            for split in ("train", "eval")
        }
        for version in VERSIONS[:scale]:
            for start in range(0, len(photos), 64):
                batch = []
                for data, image_id, label in photos[start : start + 64]:
                    new_id = image_id if version == "photo" else f"{version}/{image_id}"
                    encoded = data if version == "photo" else _version(data, version)
                    batch.append(make_example(new_id, classes[label], label, encoded))
                _write_batch(batch, layer, writers, counts[scale])
        for writer in writers.values():
            writer.close()
        (folder / "done").write_text(json.dumps(counts[scale]))
        print(f"[trainer_memory] data x{scale}: {counts[scale]} examples", flush=True)
    return {"photos": len(photos), "stored_size": stored, "counts": counts}


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_batch(batch: list, layer, writers: dict, counts: dict) -> None:
    """Writes raw examples and their Transform output (through `layer`) to the writers of their splits."""
    import numpy as np
    import tensorflow as tf

    from components import features as F
    from components.examples import RAW_FEATURES
    from components.ingest.splits import split_of

    def column(name: str, dtype: str):
        values = [e.features.feature[name] for e in batch]
        if dtype == "int64":
            return tf.constant([[v.int64_list.value[0]] for v in values], tf.int64)
        return tf.constant([[v.bytes_list.value[0]] for v in values])

    transformed = layer({name: column(name, dtype) for name, dtype in RAW_FEATURES.items()})
    out = {k: v.numpy() for k, v in transformed.items()}  # object arrays: np.asarray would strip trailing NULs
    for i, example in enumerate(batch):
        split = split_of(example.features.feature[F.IMAGE_ID].bytes_list.value[0])
        counts[split] += 1
        writers["raw", split].write(example.SerializeToString())
        feature = {}
        for name, values in out.items():
            if values.dtype == object:  # bytes, kept whole (a numpy "S" array would drop trailing NULs)
                value = [values[i]] if isinstance(values[i], bytes) else list(values[i].reshape(-1))
                feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=value))
                continue
            value = np.asarray(values[i]).reshape(-1)
            if value.dtype.kind == "f":
                feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=value.tolist()))
            else:
                feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=value.tolist()))
        transformed_example = tf.train.Example(features=tf.train.Features(feature=feature))
        writers["transformed", split].write(transformed_example.SerializeToString())


def _recipe(args: argparse.Namespace, train_images: int = 0):
    """The RunConfig measured: the `--profile` recipe at `--image-size`, with as many epochs as `--steps`
    needs over `train_images` (one when an epoch holds them all; the Trainer caps the steps)."""
    from pipeline.configs import profile_config

    batch = 32 if args.profile == "smoke" else None  # the smoke profile's 16 is smaller than a real batch
    config = profile_config(args.profile, image_size=args.image_size, epochs=1, batch_size=batch)
    per_epoch = max(1, train_images // config.simsiam.batch_size)
    return config.replace(epochs=max(1, round(args.steps / per_epoch)), warmup_epochs=0)


def _fn_args(data: Path, out: Path, custom_config: dict, train_steps: int | None = None, base_model: str | None = None):
    """The FnArgs a TFX Trainer hands `run_fn` (`fn_args_utils.get_common_fn_args`), with TFXIO's
    tf.Example reader as its data accessor."""
    from tfx.components.trainer.fn_args_utils import DataAccessor, FnArgs

    from components.examples import tf_example_reader

    return FnArgs(
        train_files=[str(data / "transformed" / "Split-train" / "*")],
        eval_files=[str(data / "transformed" / "Split-eval" / "*")],
        transform_output=str(data.parent / "transform_graph"),
        serving_model_dir=str(out / "serving"),
        model_run_dir=str(out / "run"),
        train_steps=train_steps,
        base_model=base_model,
        custom_config=custom_config,
        data_accessor=DataAccessor(tf_dataset_factory=tf_example_reader(), record_batch_factory=None,
                                   data_view_decode_fn=None),
    )  # fmt: skip


def run_child(args: argparse.Namespace) -> None:
    """One step in this process; prints {"step", "peak_mb", "seconds"} as the last line."""
    start = time.perf_counter()
    data, out = Path(args.child_dir), Path(args.child_dir) / "out" / args.child
    if args.child.startswith("simsiam"):
        from components.train import simsiam
        from components.train.trainer_config import SimSiamTrainerConfig

        config = _recipe(args, json.loads((data / "done").read_text())["train"])
        settings = SimSiamTrainerConfig(
            simsiam=config.simsiam, checkpoint_root=str(out / "checkpoints"), knn_every=config.simsiam.epochs,
            collapse_threshold=0.0, precision=config.precision, checkpoint_io_fraction=0.05,
            export_serving_model=False,
            sample_size=args.sample_size, shuffle_buffer=args.shuffle_buffer,
            cache_images=args.child == "simsiam-cache",
        )  # fmt: skip
        simsiam.run_fn(_fn_args(data, out, settings.to_custom_config(), train_steps=args.steps))
    elif args.child == "probe":
        from components.train import probe

        custom = {"probe_epochs": 50, "sample_size": args.sample_size}
        probe.run_fn(_fn_args(data, out, custom, base_model=str(data / "out" / "simsiam" / "serving")))
    else:
        from components.index.embedding_index import build_index
        from serving import ann

        splits = {s: str(data / "raw" / f"Split-{s}") for s in ("train", "eval")}
        model = str(data / "out" / "probe" / "serving")
        index, _ = build_index(model, str(data / "raw"), splits, max_thumbnails=args.sample_size)
        ann.measure_index(ann.build_index(index.embeddings), index.embeddings, 200)
    from pipeline.memory import own_peak_rss_mb

    seconds = round(time.perf_counter() - start, 1)
    line = {"step": args.child, "peak_mb": round(own_peak_rss_mb(), 1), "seconds": seconds}
    if args.child.startswith("simsiam"):  # the fit alone (components/train/checkpoint.py times it)
        history = json.loads((out / "run" / "monitor_history.json").read_text())
        line["train_seconds"] = history["checkpoint"]["train_seconds"]
    print(json.dumps(line))


def measure(args: argparse.Namespace, root: Path, scale: int, step: str) -> dict:
    command = [
        sys.executable,
        "-m",
        "benchmarks.trainer_memory",
        "--child",
        step,
        "--child-dir",
        str(root / f"x{scale}"),
    ]
    for flag in ("image_size", "steps", "profile", "sample_size", "shuffle_buffer"):
        command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"{step} at x{scale} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    import tempfile

    args = parse_args(argv)
    if args.child:
        run_child(args)
        return 0
    from benchmarks.machine import describe_device

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.work or tmp)
        root.mkdir(parents=True, exist_ok=True)
        data = build_data(args, root)
        scales = sorted(set(args.scale))
        results = {step: {} for step in STEPS if step in args.only}
        for step in results:  # the probe reads the SimSiam model, the index the probe's model: in this order
            for scale in scales[:1] if step == "simsiam-cache" and args.control_smallest_only else scales:
                results[step][scale] = measure(args, root, scale, step)
                print(f"[trainer_memory] {step} x{scale}: {results[step][scale]}", flush=True)
    small, large = scales[0], scales[-1]
    decoded = {s: round(data["counts"][s]["train"] * data["stored_size"] ** 2 * 3 / 2**20, 1) for s in scales}
    rows, within = [], {}
    for step, by_scale in results.items():
        if large not in by_scale:  # the control at the smallest scale only: no ratio to check
            rows.append((step, *(by_scale[s]["peak_mb"] if s in by_scale else "-" for s in scales), "-", "-"))
            continue
        ratio = by_scale[large]["peak_mb"] / by_scale[small]["peak_mb"]
        within[step] = ratio <= args.bound
        rows.append((step, *(by_scale[s]["peak_mb"] for s in scales), round(ratio, 3), within[step]))
    header = ["step", *(f"peak MB x{s}" for s in scales), f"x{large}/x{small}", f"<= {args.bound}"]
    print(" | ".join(header))
    print(f"decoded train split MB | {' | '.join(str(decoded[s]) for s in scales)}")
    for row in rows:
        print(" | ".join(str(v) for v in row))
    control_ok = None if "simsiam-cache" not in within else not within["simsiam-cache"]
    ok = all(v for k, v in within.items() if k != "simsiam-cache") and control_ok is not False
    record = {
        "command": "python -m benchmarks.trainer_memory " + " ".join(argv if argv is not None else sys.argv[1:]),
        "device": describe_device("tensorflow")[0],
        "data": {**data, "decoded_train_mb": decoded},
        "settings": {
            k: getattr(args, k) for k in ("profile", "image_size", "steps", "sample_size", "shuffle_buffer", "bound")
        },
        "train_seconds": {
            step: {s: r.get("train_seconds") for s, r in by_scale.items()} for step, by_scale in results.items()
        },
        "results": results,
        "within_bound": within,
        "control_breaks_bound": control_ok,
        "passed": ok,
    }
    out = Path(args.out or RESULTS_DIR / f"trainer_memory-{'-'.join(f'x{s}' for s in scales)}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}; {'passed' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
