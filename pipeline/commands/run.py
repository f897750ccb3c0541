"""`simsiam-tfx run`: the whole pipeline with LocalDagRunner (SQLite ML Metadata, Beam FnApiRunner)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from components.ingest.anomalies import anomaly_lines
from components.report.html import baseline_scores
from pipeline.configs import add_recipe_arguments, add_workers_argument
from pipeline.local_runner import SUMMARY_FILE

INTERRUPTED = (
    "rerun the same command to go on: finished steps are reused from OUTPUT/metadata.sqlite and the "
    "SimSiam Trainer resumes from its last checkpoint"
)
HELP = "run the whole pipeline locally: ingest, transform, SimSiam, linear probe, evaluate, push"
DESCRIPTION = """\
Runs ExampleGen -> StatisticsGen -> SchemaGen (ImportSchemaGen with --schema) -> ExampleValidator ->
Transform -> SimSiam Trainer -> linear-probe Trainer -> Evaluator -> BaselineGate -> Pusher ->
EmbeddingIndexer -> RunReport with LocalDagRunner. The BaselineGate pushes only a model whose linear
probe and kNN accuracy reach the strongest untrained baseline (--gate-against; the smoke profile
compares with nothing).

Input (see `simsiam-tfx ingest --help`): --data-dir (class folders) and/or --unlabeled-dir (images at
any depth, no labels), --examples GLOB --image-key KEY [--label-key KEY] (TFRecords), or --tfds NAME.
SimSiam trains on every image; the probe and the Evaluator use the labelled ones. With no label at
all there is no probe: the serving model returns embeddings only, and a label-free gate (encoder
spread and effective rank against the random-init encoder and the last blessed model) decides
whether it is pushed. Two collapse numbers, two names: the training curve's collapse_std is the std
of the l2-normalised projector output times sqrt(d) (SimSiam paper Sec. 4.1; about 1 healthy, the
SimSiam Trainer fails below the profile's collapse_threshold); the gate's encoder_spread is the same
formula on the served embedding, the encoder's output after a ReLU, which sits well below 1 even at
random init (0 = collapsed).

Data anomalies: the ExampleValidator compares each split with a curated schema given with --schema
(without it, the train split with the schema inferred from it: no reference to drift from). An
anomaly is a warning, not a stop: one line each ("data anomaly (split S) FEATURE: ...") at the end
of the run, in summary.json ("anomalies") and in the report; the run and its exit status go on,
because every example already passed the per-file checks and the Evaluator and the gates still judge
the model (a new class is often a deliberate change).

profiles (flags override their values):
  smoke  a few minutes on a 2-core CPU; proves the plumbing (tiny network, 2 epochs)
  cpu    all images, half-width ResNet-18 at 64 px, 150 epochs: about 35 min on 2 cores (docs/quality.md)
  gpu    the small-data GPU recipe (docs/recipe.md): ResNet-18 at 128 px, 400 epochs, bf16

Writes OUT/report.html (the run report: gate, quality vs the untrained baselines, per-class
accuracy, curves, t-SNE map, nearest-neighbour grids, rejected files, time per step),
OUT/summary.json, the report's figures (OUT/training_curves.png, OUT/embedding_map_tsne.png,
OUT/neighbour_grid.jpg; --no-plots leaves them out of OUT), TensorBoard projector files
under OUT/pipeline_root (tensorboard --logdir OUT) and, when the gate blesses the model,
a TF Serving model in OUT/serving/<version>/.
Exit status: 0 the model was pushed; 1 a step failed; 2 bad arguments or input (data that cannot make
train/eval splits, an unusable or busy --output); 3 the run finished but the gate did not bless the
model, so nothing was pushed (the reasons, the trained model's path and a command that uses it
anyway are printed); 130 interrupted (Ctrl-C).
One command at a time per OUT: a second `run` or `ingest` on it stops at once, naming the one that
holds it (OUT/simsiam-tfx.lock; the lock ends with its process, even a killed one).
Re-running with the same OUT reuses cached steps (any file added, removed or rewritten at any depth of
the data folder re-runs ingestion and what follows) and resumes an interrupted SimSiam Trainer.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from pipeline.commands.ingest import SCHEMA_HELP
    from pipeline.configs import add_input_arguments

    p.add_argument("--profile", choices=["smoke", "cpu", "gpu"], help="default: gpu if TensorFlow sees one, else cpu")
    add_input_arguments(p)
    p.add_argument("--output", default="runs/latest", help="run folder (default: %(default)s)")
    add_recipe_arguments(p)
    add_workers_argument(p)
    p.add_argument("--pipeline-name", default="simsiam-tfx")
    p.add_argument("--no-cache", action="store_true", help="execute every component again")
    p.add_argument("--schema", metavar="SCHEMA.pbtxt", help=SCHEMA_HELP)
    p.add_argument(
        "--no-plots", action="store_true", help="do not copy the report's figures into OUT (report.html has them)"
    )
    p.add_argument("--verbose", action="store_true", help="show TFX/TensorFlow logs")


EXIT_FAILED, EXIT_USAGE, EXIT_NOT_PUSHED = 1, 2, 3


def run(args: argparse.Namespace) -> int:
    from components.ingest.splits import DEFAULT_EVAL_PERCENT
    from pipeline import preflight
    from pipeline.configs import input_from_args

    try:  # checked before TensorFlow loads: answers at once
        image_input = input_from_args(args)
        out = preflight.check_output(args.output, {"--data-dir": args.data_dir, "--unlabeled-dir": args.unlabeled_dir})
    except (ValueError, preflight.PreflightError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    from pipeline.commands.ingest import schema_problem

    if problem := schema_problem(args.schema):
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    for flag, folder in (("--data-dir", args.data_dir), ("--unlabeled-dir", args.unlabeled_dir)):
        if folder and "://" not in folder and not os.path.isdir(folder):
            print(f"error: {flag} {folder} is not a folder", file=sys.stderr)
            return EXIT_USAGE
    percent = args.eval_percent or DEFAULT_EVAL_PERCENT  # an empty or one-class folder: told before TF loads
    if 0 < percent < 100 and (problem := image_input.split_problem(percent, batch_size=1)):
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        _lock = preflight.claim_run_folder(out, "simsiam-tfx run")  # held until run() returns or the process ends
    except preflight.PreflightError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    from pipeline.local_runner import quiet_logs

    quiet_logs(args.verbose)
    from pipeline.configs import config_from_args, default_profile
    from pipeline.local_runner import run_and_summarise

    print(f"simsiam-tfx run: {image_input.describe()}", flush=True)  # before TensorFlow loads (default_profile)
    profile = args.profile or default_profile()
    try:
        config = config_from_args(args, profile)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    if problem := image_input.split_problem(config.eval_percent, config.simsiam.batch_size):
        print(f"error: {problem}", file=sys.stderr)  # in a second, before any image is decoded
        return EXIT_USAGE
    if warning := image_input.small_eval_warning(config.eval_percent):
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    recipe = config.simsiam
    print(
        f"simsiam-tfx run: profile={profile} backbone={recipe.backbone} image_size={recipe.image_size} "
        f"(stored {recipe.stored_size}, evaluated at {recipe.eval_size}) epochs={recipe.epochs} -> {out}",
        flush=True,
    )
    summary = run_and_summarise(
        image_input,
        config,
        out,
        args.pipeline_name,
        args.workers,
        enable_cache=not args.no_cache,
        plots=not args.no_plots,
        schema_path=os.path.abspath(args.schema) if args.schema and "://" not in args.schema else args.schema,
    )
    _print_summary(summary, out)
    if summary.get("write_error"):
        print(f"error: {summary['write_error']}", file=sys.stderr)
        return EXIT_FAILED
    if summary.get("error"):
        return EXIT_FAILED
    if not summary["pushed"]:
        reason = (summary.get("gate_reasons") or ["the gate did not bless the model"])[0]
        print(f"simsiam-tfx run: finished, nothing pushed (exit status {EXIT_NOT_PUSHED}): {reason}", file=sys.stderr)
        return EXIT_NOT_PUSHED
    return 0


def search_command(index: str, model: str) -> str:
    """The `simsiam-tfx search` command line for a run's index and pushed model (IMAGE: the query photo)."""
    return shlex.join(["simsiam-tfx", "search", "--index", index, "--model", model, "--query", "IMAGE"])


def _print_baselines(baselines: dict, trained: dict) -> None:
    """kNN and linear probe after SimSiam against each untrained baseline, and the gain over the strongest."""
    from models.baselines import strongest_baseline

    baselines = {name: values for name, values in baselines.items() if values and None not in values.values()}
    for metric, title in (("knn", "kNN accuracy"), ("linear_probe", "linear probe")):
        best = strongest_baseline(baselines, metric)
        if best is None or trained.get(metric) is None:
            continue
        shown = ", ".join(f"{name.replace('_', ' ')} {values[metric]:.4f}" for name, values in baselines.items())
        print(
            f"  {title}: after SimSiam {trained[metric]:.4f}; untrained: {shown}; "
            f"gain over the strongest ({best[0].replace('_', ' ')}) {trained[metric] - best[1]:+.4f}"
        )


def _print_summary(s: dict, out: str) -> None:
    ev = s.get("eval_metrics") or {}
    print("\n== simsiam-tfx run summary ==")
    for node, secs in s["seconds_per_component"].items():
        print(f"  {node:<32} {s['states'][node].lower():<9} {secs:>8.1f}s")
    if ev.get("accuracy") is not None:
        print(f"  eval accuracy (linear probe)     {ev['accuracy']:.4f}")
    _print_baselines(
        # A run that failed before its RunReport has no monitor figures in its summary.
        baseline_scores(s),
        {"knn": (s.get("simsiam_monitor") or {}).get("knn_accuracy"), "linear_probe": ev.get("accuracy")},
    )
    if gate := s.get("label_free"):  # no labels: what the label-free gate measured on the held-out images
        candidate, random_init, limits = gate["candidate"], gate["random_init"], gate["thresholds"]

        def num(value) -> str:
            return "n/a" if value is None else f"{value:.3f}"

        print(
            f"  label-free gate: effective rank (RankMe) {num(candidate.get('effective_rank'))} vs "
            f"{num(random_init.get('effective_rank'))} at random init (ratio {num(gate.get('rank_ratio'))}, "
            f"needed {limits['min_rank_ratio']:g}), encoder spread {num(candidate.get('encoder_spread'))} "
            f"(floor {limits['min_encoder_spread']:g}; 0 = collapsed)"
        )
    print(f"  blessed={s['blessed']} pushed={s['pushed']} serving_model_dir={s['serving_model_dir']}")
    if note := (s.get("baseline_gate") or {}).get("note"):  # blessed without comparing: say so
        print(f"  {note}")
    if not s["pushed"] and not s.get("error"):
        for reason in s.get("gate_reasons") or ["the gate did not bless the model"]:
            print(f"  not pushed: {reason}")
        if s.get("candidate_model_dir"):
            print(f"  the trained model (not pushed): {s['candidate_model_dir']}")
    if s.get("embedding_index"):
        print(f"  embedding index: {s['embedding_index']}")
        if s.get("serving_model_dir"):  # a command that runs as printed, once IMAGE names a photo
            print(f"  search it: {search_command(s['embedding_index'], s['serving_model_dir'])}")
        elif s.get("candidate_model_dir") and not s.get("error"):
            print(f"  use it anyway: {search_command(s['embedding_index'], s['candidate_model_dir'])}")
    print(f"  wall {s['wall_s']:.0f}s, peak memory {s['peak_rss_mb']:.0f} MB")
    for line in anomaly_lines(s.get("anomalies") or []):  # warnings: the run went on (see --help)
        print(f"  {line}")
    if s.get("error"):
        print(f"  FAILED: {s['error']}")
    if not s.get("write_error"):
        print(f"  details: {os.path.join(out, SUMMARY_FILE)}")
    if s.get("report"):
        print(f"  report: {s['report']}  (open it in a browser; tensorboard --logdir {out}: Projector tab)")
