"""Renders the run report (pipeline/report.py gathers its data) as one self-contained HTML page.

Self-contained: the CSS is inline and every figure is a `data:image/...;base64,...` URI, so the page
needs no network and no other file (it is opened from a bucket by the pipeline UI, or mailed). The
numbers are also embedded as JSON (`<script type="application/json" id="report-data">`), so a test or
a script reads back exactly what the page shows.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from typing import Any

from components.ingest.inputs import SMALL_EVAL

TIMINGS_START, TIMINGS_END = "<!-- timings -->", "<!-- /timings -->"
FIGURE_CAPTIONS = {
    "curves": "Training curves of SimSiam pre-training. The dashed lines on kNN accuracy are the same encoder at "
    "its random initialisation and the strongest feature that needs no training: the curve must end "
    "above both.",
    "map": "t-SNE of the eval split's embeddings, coloured by class: the trained encoder (left) and the same "
    "encoder at its random initialisation (right).",
    "neighbours": "Eval-split queries (two per class) and their nearest train images by cosine similarity. Green: "
    "same class as the query; red: another class. Left: trained encoder; right: random init.",
}
# Without labels there are no classes, no colours and no kNN line: the captions say what is there.
FIGURE_CAPTIONS_UNLABELLED = {
    "curves": "Training curves of SimSiam pre-training: loss, collapse_std of the projector output (about 1 is "
    "healthy, 0 is collapse) and the learning rate. No labels, so no kNN accuracy.",
    "map": "t-SNE of the held-out photos' embeddings (no labels, so one colour): the trained encoder (left) and "
    "the same encoder at its random initialisation (right). Groups that random init lacks are what SimSiam learnt.",
    "neighbours": "Held-out photos (the first ten by file name) and their nearest training photos by cosine "
    "similarity, captioned with file name and similarity. Left: trained encoder; right: random init.",
}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1200px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0; font-size: 14px; }
td, th { border: 1px solid #ddd; padding: 3px 9px; text-align: left; } td.n { text-align: right; }
.ok { color: #137333; font-weight: bold; } .bad { color: #b3261e; font-weight: bold; }
img { max-width: 100%; height: auto; display: block; } figcaption { font-size: 13px; color: #555; }
code { background: #f3f3f3; padding: 1px 4px; }
"""


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else html.escape(str(value))


def _count(value: Any) -> int | None:
    """TFMA keeps counts as floats (example_count 22.0): shown as the integer they are."""
    return None if value is None else int(value)


def _small_eval_rows(count: Any) -> list[tuple[str, str]]:
    """A warning row when the eval split is too small for its figures to mean much (binomial standard
    error of an accuracy on n images: at most 0.5 / sqrt(n); components/ingest/inputs.py warns the same)."""
    if count is None or count >= SMALL_EVAL:
        return []
    n = max(int(count), 1)
    return [
        (
            "warning",
            f"only {n} eval images: each accuracy here has a standard error of up to "
            f"{50 / n**0.5:.0f} points, so differences between the figures are mostly noise",
        )
    ]


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{_num(c)}</td>'
            if isinstance(c, (int, float)) and not isinstance(c, bool)
            else f"<td>{c if isinstance(c, Raw) else html.escape(str(c))}</td>"
            for c in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


class Raw(str):
    """A table cell that is already HTML."""


def _flag(value: bool | None, yes: str = "yes", no: str = "no") -> Raw:
    return Raw(f'<span class="ok">{yes}</span>' if value else f'<span class="bad">{no}</span>')


def data_uri(image_path: str) -> str:
    """`data:image/png;base64,...` (or image/jpeg, by the file's suffix) of an image file."""
    mime = "image/jpeg" if image_path.lower().endswith((".jpg", ".jpeg")) else "image/png"
    with open(image_path, "rb") as f:
        return f"data:{mime};base64," + base64.b64encode(f.read()).decode("ascii")


def _gain(trained: float | None, baseline: float | None) -> float | None:
    return None if trained is None or baseline is None else trained - baseline


MEASURES_SHOWN = {"linear_probe": "linear probe (Evaluator's accuracy)", "knn": "kNN (SimSiam Trainer's, k = 20)"}
BASELINE_TITLES = {
    "random_init": "random init",
    "random_filters": "random 3x3 filters + mean RGB",
    "colour_histograms": "colour histograms",
}


def baseline_scores(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The run's untrained baselines `{name: {"knn", "linear_probe"}}` (the SimSiam Trainer's
    `baselines`); a run made before the cheap baselines existed has random init alone."""
    return data.get("baselines") or {
        "random_init": {
            "knn": data.get("random_init_knn_accuracy"),
            "linear_probe": data.get("random_init_linear_probe_accuracy"),
        }
    }


def knn_references(baselines: dict[str, dict[str, Any]]) -> list[tuple[str, float | None]]:
    """The dashed lines of the kNN training curve: random init, and the strongest cheap baseline."""
    from models.baselines import strongest_baseline

    lines = [("random init", (baselines.get("random_init") or {}).get("knn"))]
    cheap = strongest_baseline({n: v for n, v in baselines.items() if n != "random_init"}, "knn")
    return lines + ([(BASELINE_TITLES.get(cheap[0], cheap[0]), cheap[1])] if cheap else [])


def quality_table(baselines: dict[str, dict[str, Any]], trained: dict[str, float | None]) -> str:
    """kNN and linear-probe accuracy of every baseline, of the trained encoder, and the gain over the
    strongest baseline of each row (models.baselines.strongest_baseline)."""
    from models.baselines import strongest_baseline

    names = [n for n in baselines if n in BASELINE_TITLES]
    rows = []
    for metric, title in (("knn", "kNN accuracy (k=20, cosine)"), ("linear_probe", "linear probe accuracy")):
        best = strongest_baseline({n: baselines[n] for n in names}, metric)
        rows.append(
            (
                title,
                *[(baselines[n] or {}).get(metric) for n in names],
                trained.get(metric),
                _gain(trained.get(metric), best and best[1]),
                BASELINE_TITLES[best[0]] if best else "-",
            )
        )
    header = [
        "metric (eval split)",
        *[BASELINE_TITLES[n] for n in names],
        "after SimSiam",
        "gain over the strongest",
        "strongest baseline",
    ]
    return _table(header, rows)


def timings_table(seconds: dict[str, float], states: dict[str, str]) -> str:
    """The time-per-component section's table: component, state, seconds."""
    rows = [(node, states.get(node, "?").lower(), f"{secs:.1f}") for node, secs in seconds.items()]
    return _table(["component", "state", "seconds"], rows + [("sum", "", f"{sum(seconds.values()):.1f}")])


def with_timings(page: str, seconds: dict[str, float], states: dict[str, str]) -> str:
    """`page` with its time-per-component placeholder replaced by the table (known only after the run)."""
    start, end = page.find(TIMINGS_START), page.find(TIMINGS_END)
    if start < 0 or end < 0:
        raise ValueError("the report has no time-per-component placeholder")
    return page[:start] + TIMINGS_START + timings_table(seconds, states) + page[end:]


BASELINES_EXPLAINED = (
    "The baselines are the SimSiam Trainer's, measured before training with the same scorer on the same eval "
    "view: the same encoder at its random initialisation, and two features that need no training at all "
    "(64 random 3x3 filters with ReLU and global averaging plus the mean colour; RGB statistics and HSV colour "
    "histograms of the photo and its 2x2 grid: models/baselines.py). SimSiam is worth its training time only "
    "where it beats the strongest of them."
)

RANDOM_INIT_EXPLAINED = (
    "The random-init numbers are the SimSiam Trainer's, measured before training with the same encoder and scorer."
)

LABEL_FREE_EXPLAINED = (
    "Without labels nothing can be classified, so the gate looks at the shape of the embeddings of the held-out "
    "images. A collapsed encoder maps every image to about the same vector (collapse measure near 0, Chen & He "
    "2021 Sec. 4.1). The effective rank (RankMe, Garrido et al. 2023) counts how many directions the embeddings "
    "really use; it tracks downstream accuracy across methods and settings. The model is pushed only when it is "
    "not collapsed, its effective rank is clearly above that of the same encoder at random initialisation, and it "
    "is not below the last pushed model's."
)


def label_free_rows(result: dict[str, Any]) -> list[tuple[str, Any]]:
    """The label-free gate's table rows from its `label_free_metrics.json` (components/evaluate/label_free.py)."""
    thresholds = result.get("thresholds", {})
    candidate, random_init = result.get("candidate") or {}, result.get("random_init") or {}
    baseline = result.get("baseline") or {}
    rows = [
        ("effective rank (RankMe): candidate", candidate.get("effective_rank")),
        ("effective rank: same encoder at random init", random_init.get("effective_rank")),
        (
            f"ratio candidate / random init (needed: >= {_num(thresholds.get('min_rank_ratio'))})",
            result.get("rank_ratio"),
        ),
        (
            "effective rank: last blessed model (candidate must not be lower)",
            baseline.get("effective_rank") if baseline else "none yet",
        ),
        (
            f"collapse measure: candidate (needed: >= {_num(thresholds.get('min_collapse_std'))})",
            candidate.get("collapse_std"),
        ),
        ("collapse measure: random init", random_init.get("collapse_std")),
        ("blessed", _flag(result.get("blessed"))),
    ]
    return rows + [("reason", r) for r in result.get("reasons", [])]


def baseline_gate_rows(decision: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """Rows for the BaselineGate's decision (components/evaluate/baseline_gate.py `baseline_decision`)."""
    if not decision:
        return []
    if decision.get("against") == "none":
        return [("compared with the untrained baselines", "no (this profile only proves the plumbing)")]
    rows: list[tuple[str, Any]] = [
        (
            "compared with",
            "the strongest untrained baseline" if decision["against"] == "strongest" else "the random-init encoder",
        )
    ]
    for c in decision.get("comparisons", []):
        verdict = "passed" if c["passed"] else "BELOW"
        rows.append(
            (
                MEASURES_SHOWN.get(c["measure"], c["measure"]),
                f"{c['trained']:.4f} vs {c['baseline'].replace('_', ' ')} {c['baseline_score']:.4f}: {verdict}",
            )
        )
    return rows + [("reason", r) for r in decision.get("reasons", []) if not r.startswith("Evaluator: ")]


def index_gate_rows(gate: dict[str, Any]) -> list[tuple[str, Any]]:
    """The EmbeddingIndexer's gate (`index_report.json` "gate", serving/ann.py `measure_index`) as table rows."""
    kind = {
        "exact": "exact (faiss IndexFlatIP)",
        "ivf": f"IVF (faiss IndexIVFFlat, nlist {gate.get('nlist')}, nprobe {gate.get('nprobe')})",
    }
    return [
        ("index", f"{kind.get(gate.get('kind'), gate.get('kind'))}, {gate.get('rows')} rows"),
        (
            f"recall@10 vs exact search on {gate.get('queries')} rows (needed: >= {_num(gate.get('min_recall'))})",
            gate.get("recall_at_10"),
        ),
        (
            "latency at batch 1, p50 / p95 (ms)",
            f"{_num(gate.get('latency_ms_p50'))} / {_num(gate.get('latency_ms_p95'))}",
        ),
        (
            "queries/s at batch 64",
            "-" if gate.get("queries_per_s_batch64") is None else f"{gate['queries_per_s_batch64']:.0f}",
        ),
        ("threads", gate.get("threads")),
        ("passed", _flag(gate.get("passed"))),
    ]


def render_report(data: dict[str, Any], figures: dict[str, str]) -> str:
    """The page for `data` (the keys pipeline/report.py's RunReport fills; the quality numbers are the ones
    summary.json has under the same names) and `figures` {"curves" | "map" | "neighbours": PNG/JPEG path}."""
    ev, monitor, gate = data["eval_metrics"], data["simsiam_monitor"], data["gate"]
    ingestion, index = data.get("ingestion", {}), data.get("index", {})
    label_free = data.get("label_free") or {}
    summary = _table(
        ["", ""],
        [
            ("blessed by the " + ("label-free gate" if label_free else "gate"), _flag(data["blessed"])),
            ("pushed", _flag(data["pushed"])),
            ("serving model", data.get("serving_model_dir") or "-"),
        ]
        + (
            [("held-out images measured (no labels)", label_free.get("examples_read"))]
            if label_free
            else [
                ("eval accuracy (linear probe, Evaluator)", ev.get("accuracy")),
                ("eval examples", _count(ev.get("example_count"))),
            ]
            + _small_eval_rows(ev.get("example_count"))
        ),
    )
    if label_free:
        gate_title, gate_rows = "Gate (label-free: no labels in the data)", label_free_rows(label_free)
    else:
        gate_title, gate_rows = (
            "Gate (Evaluator, then the untrained baselines)",
            [
                ("accuracy floor (value threshold, lower bound; 0 = off)", gate.get("accuracy_floor")),
                ("no regression (change threshold)", "accuracy no lower than the last pushed model's"),
                ("candidate accuracy", ev.get("accuracy")),
                ("Evaluator's thresholds met", _flag(gate.get("validation_ok"))),
            ]
            + [("Evaluator failure", f) for f in gate.get("failures", [])]
            + baseline_gate_rows(gate.get("baseline_gate")),
        )
    rknn = data.get("random_init_knn_accuracy")
    quality = (
        "<p>No labelled images: accuracy cannot be measured; see the label-free gate above.</p>"
        if label_free and rknn is None
        else quality_table(
            baseline_scores(data), {"knn": monitor.get("knn_accuracy"), "linear_probe": ev.get("accuracy")}
        )
    )
    explained = BASELINES_EXPLAINED if data.get("baselines") else RANDOM_INIT_EXPLAINED
    recomputed = data.get("random_init_knn_accuracy_recomputed")
    eval_counts = ingestion.get("counts", {}).get("eval", {})
    per_class = _table(
        ["class", "eval images", "linear probe accuracy"],
        [(name, eval_counts.get(name, "-"), acc) for name, acc in sorted(ev.get("per_class_accuracy", {}).items())],
    )
    rejected = [(r.get("path", "?"), "ingestion", r.get("reason", "")) for r in ingestion.get("rejected", [])]
    rejected += [(r.get("path", "?"), "indexing", r.get("reason", "")) for r in index.get("failed", [])]
    captions = FIGURE_CAPTIONS_UNLABELLED if label_free else FIGURE_CAPTIONS
    figure_html = {
        name: f'<figure><img src="{data_uri(path)}" alt="{name}"><figcaption>{html.escape(captions[name])}'
        "</figcaption></figure>"
        for name, path in figures.items()
    }
    missing = "<p>(not drawn: too few images)</p>"
    projector = index.get("projector_dir")
    sections = [
        f"<h1>simsiam-tfx run report</h1>{summary}",
        f"<h2>{gate_title}</h2>{_table(['', ''], gate_rows)}"
        + (f"<p>{html.escape(LABEL_FREE_EXPLAINED)}</p>" if label_free else ""),
        f"<h2>Quality vs untrained baselines</h2>{quality}"
        + (
            ""
            if rknn is None
            else f"<p>{html.escape(explained)} This step rebuilt the random-init encoder from the recipe and "
            f"seed: its kNN accuracy here is {_num(recomputed)}.</p>"
        ),
        f"<h2>Per-class accuracy</h2>{per_class if ev.get('per_class_accuracy') else '<p>none: no labels</p>'}",
        f"<h2>Training curves</h2>{figure_html.get('curves', missing)}",
        f"<h2>Map of the eval embeddings</h2>{figure_html.get('map', missing)}",
        f"<h2>Nearest neighbours</h2>{figure_html.get('neighbours', missing)}",
        f"<h2>Rejected files ({len(rejected)})</h2>"
        + (_table(["file", "step", "reason"], rejected) if rejected else "<p>none</p>"),
        f"<h2>Time per component</h2>{TIMINGS_START}<p>Filled in by <code>simsiam-tfx run</code> when the run "
        f"ends; on Kubeflow / Vertex AI the pipeline UI shows each step's time.</p>{TIMINGS_END}",
        "<h2>Embedding index</h2>"
        + (
            _table(["", ""], index_gate_rows(index["gate"]))
            if index.get("gate")
            else "<p>not measured (an index from before the gate)</p>"
        ),
        "<h2>Embedding projector</h2><p>"
        + (f"TensorBoard projector files: <code>{html.escape(projector)}</code>. " if projector else "")
        + "Run <code>tensorboard --logdir OUT</code> and open the Projector tab.</p>",
    ]
    blob = json.dumps(data, default=str).replace("</", "<\\/")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>simsiam-tfx run report</title>'
        f"<style>{STYLE}</style></head><body>{''.join(sections)}"
        f'<script type="application/json" id="report-data">{blob}</script></body></html>'
    )
