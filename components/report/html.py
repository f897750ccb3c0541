"""Renders the run report (components/report/data.py gathers its data) as one self-contained HTML page.

The page is the Jinja2 template `report.html.j2` beside this module, with autoescape on: every value
from the data is escaped, and only what this module marks as `Markup` (the yes/no flags, the JSON
blob) goes in as HTML. This module turns the data into the template's rows and texts.

Self-contained: the CSS is inline and every figure is a `data:image/...;base64,...` URI, so the page
needs no network and no other file (it is opened from a bucket by the pipeline UI, or mailed). The
numbers are also embedded as JSON (`<script type="application/json" id="report-data">`), so a test or
a script reads back exactly what the page shows.
"""

from __future__ import annotations

import base64
import functools
import json
import os
from typing import Any

import jinja2
from markupsafe import Markup

from components.ingest.inputs import SMALL_EVAL

TEMPLATE, TABLE_TEMPLATE = "report.html.j2", "table.html.j2"
TIMINGS_START, TIMINGS_END = "<!-- timings -->", "<!-- /timings -->"  # around the time-per-component text
FIGURE_CAPTIONS = {
    "curves": "Training curves of SimSiam pre-training. The dashed lines on kNN accuracy are the same encoder at "
    "its random initialisation and the strongest feature that needs no training: SimSiam has earned its cost "
    "where the curve ends above both.",
    "map": "t-SNE of the eval split's embeddings, coloured by class: the trained encoder (left) and the same "
    "encoder at its random initialisation (right).",
    "neighbours": "Eval-split queries (the first by file name of each class) and their nearest train images by "
    "cosine similarity. Green: same class as the query; red: another class. Left: trained encoder; right: random init.",
}
# Without labels there are no classes, no colours and no kNN line: the captions say what is there.
FIGURE_CAPTIONS_UNLABELLED = {
    "curves": "Training curves of SimSiam pre-training: loss, collapse_std (the std of the l2-normalised "
    "projector output times sqrt(d), SimSiam paper Sec. 4.1: about 1 is healthy, 0 is collapse; not the gate's "
    "encoder spread) and the learning rate. No labels, so no kNN accuracy.",
    "map": "t-SNE of the held-out photos' embeddings (no labels, so one colour): the trained encoder (left) and "
    "the same encoder at its random initialisation (right). Groups that random init lacks are what SimSiam learnt.",
    "neighbours": "Held-out photos (the first by file name) and their nearest training photos by cosine "
    "similarity, captioned with file name and similarity. Left: trained encoder; right: random init.",
}


def _where_the_curve_ends(final: float | None, references: list[tuple[str, float | None]]) -> str:
    """Where the kNN curve's last value lies against each dashed line, as the page's 4 decimals show it."""
    parts = []
    for name, value in references:
        if final is None or value is None:
            continue
        gap = round(final - value, 4)
        parts.append(f"level with {name}" if gap == 0 else f"{abs(gap):.4f} {'above' if gap > 0 else 'below'} {name}")
    return f" It ends {' and '.join(parts)}." if parts else ""


def figure_captions(data: dict[str, Any]) -> dict[str, str]:
    """The captions of the page's figures, with what depends on the run said from its numbers: how many
    queries the neighbour grid shows (`data["figures_shown"]`, from components/report/data.py
    `draw_figures`; a report.json from before it has no counts, and its captions none) and where the
    kNN curve ended against its dashed lines. A fixed "ten photos" or "ends above both" would be false
    for a small folder or a short run, the cases a first run is."""
    shown = data.get("figures_shown") or {}
    queries, per_class = shown.get("neighbour_queries"), shown.get("queries_per_class")
    if data.get("label_free"):
        captions = dict(FIGURE_CAPTIONS_UNLABELLED)
        if queries:
            captions["neighbours"] = captions["neighbours"].replace(
                "(the first by file name)", f"(the first {queries} by file name)"
            )
        return captions
    captions = dict(FIGURE_CAPTIONS)
    if queries and per_class:
        captions["neighbours"] = captions["neighbours"].replace(
            "(the first by file name of each class)",
            f"({queries}: up to {per_class} per class, the first by file name)",
        )
    final = (data.get("simsiam_monitor") or {}).get("knn_accuracy")
    captions["curves"] += _where_the_curve_ends(final, knn_references(baseline_scores(data)))
    return captions


def _num(value: Any) -> str:
    """A number as the page shows it: floats to 4 decimals, None as "-" (the template escapes it)."""
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def _is_number(value: Any) -> bool:
    """Whether a table cell is right-aligned and formatted by `_num` (bools are yes/no, not numbers)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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


def _profile_rows(profile: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The header's "profile" row: its name and recipe (components/report/data.py `profile_row`)."""
    if not profile:
        return []
    size, eval_size = profile.get("image_size"), profile.get("eval_size")
    sizes = f"{size} px" if eval_size in (None, size) else f"{size} px crops, evaluated at {eval_size} px"
    recipe = f"{profile.get('backbone')}, {sizes}, {profile.get('epochs')} epochs, batch {profile.get('batch_size')}"
    return [("profile", f"{profile.get('name') or '(not recorded)'}: {recipe}")]


ANOMALIES_EXPLAINED = (
    "TFX's ExampleValidator compares each split's statistics with the schema: a curated one given with --schema, "
    "or else, for the train split only, the one inferred from it (nothing to drift from). An anomaly is a "
    "warning: the run goes on, since "
    "every example passed the per-file checks; it says the data differs from what the schema describes."
)


class Table(dict):
    """A table for the template's `table` macro: {"header": [str], "rows": [[cell]]}; a cell is a number
    (right-aligned, `_num`), `Markup` (already HTML) or anything else (escaped text)."""


def _table(header: list[str], rows: list) -> Table:
    return Table(header=list(header), rows=[list(r) for r in rows])


def _flag(value: bool | None, yes: str = "yes", no: str = "no") -> Markup:
    return Markup('<span class="ok">{}</span>' if value else '<span class="bad">{}</span>').format(yes if value else no)


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


def quality_table(baselines: dict[str, dict[str, Any]], trained: dict[str, float | None]) -> Table:
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
    """The time-per-component section's table (HTML): component, state, seconds."""
    rows = [(node, states.get(node, "?").lower(), f"{secs:.1f}") for node, secs in seconds.items()]
    table = _table(["component", "state", "seconds"], rows + [("sum", "", f"{sum(seconds.values()):.1f}")])
    return str(_environment().get_template(TABLE_TEMPLATE).module.table(table))


def with_timings(page: str, seconds: dict[str, float], states: dict[str, str]) -> str:
    """`page` with its time-per-component section (between the timings markers) replaced by the table: the
    times are known only after the run, so `simsiam-tfx run` puts them in its copy of the page."""
    start, end = page.find(TIMINGS_START), page.find(TIMINGS_END)
    if start < 0 or end < 0:
        raise ValueError("the report has no time-per-component placeholder (timings markers)")
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
    "images. A collapsed encoder maps every image to about the same vector: its encoder spread (the SimSiam "
    "paper's collapse monitor, Chen & He 2021 Sec. 4.1, on the served embeddings) is near 0. It is not the "
    "training curve's collapse_std, which measures the projector's output: the served embeddings follow a ReLU, "
    "so their spread sits well below 1 even at random initialisation, and only 0 means collapse. "
    "The effective rank (RankMe, Garrido et al. 2023) counts how many directions the embeddings "
    "really use; it tracks downstream accuracy across methods and settings. The model is pushed only when it is "
    "not collapsed, its effective rank is clearly above that of the same encoder at random initialisation, and it "
    "is not below the last pushed model's."
)


def _spread(measures: dict[str, Any]) -> Any:
    """The gate's encoder spread; a label_free_metrics.json written before the rename calls it collapse_std."""
    return measures.get("encoder_spread", measures.get("collapse_std"))


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
            f"encoder spread: candidate (0 = collapsed; needed: >= {_num(thresholds.get('min_encoder_spread'))})",
            _spread(candidate),
        ),
        ("encoder spread: random init", _spread(random_init)),
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


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    """The templates shipped beside this module (`report.html.j2`, `table.html.j2`: setup.py package_data),
    with autoescape on and undefined names an error."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.path.dirname(os.path.abspath(__file__))),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["num"] = _num
    environment.tests["numeric_cell"] = _is_number
    return environment


def render_report(data: dict[str, Any], figures: dict[str, str]) -> str:
    """The page for `data` (the keys components/report/data.py fills and report.json holds; OUT/summary.json
    has them too) and `figures` {"curves" | "map" | "neighbours": PNG/JPEG path}."""
    ev, monitor, gate = data["eval_metrics"], data["simsiam_monitor"], data["gate"]
    ingestion, index = data.get("ingestion", {}), data.get("index", {})
    label_free = data.get("label_free") or {}
    summary = _table(
        [],
        _profile_rows(data.get("profile"))
        + [
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
    eval_counts = ingestion.get("counts", {}).get("eval", {})
    rejected = [(r.get("path", "?"), "ingestion", r.get("reason", "")) for r in ingestion.get("rejected", [])]
    rejected += [(r.get("path", "?"), "indexing", r.get("reason", "")) for r in index.get("failed", [])]
    captions = figure_captions(data)
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            summary=summary,
            gate_title=gate_title,
            gate=_table([], gate_rows),
            label_free_explained=LABEL_FREE_EXPLAINED if label_free else None,
            # No labelled images and no random-init kNN: accuracy cannot be measured, no table.
            quality=None
            if label_free and rknn is None
            else quality_table(
                baseline_scores(data), {"knn": monitor.get("knn_accuracy"), "linear_probe": ev.get("accuracy")}
            ),
            baselines_explained=None
            if rknn is None
            else BASELINES_EXPLAINED
            if data.get("baselines")
            else RANDOM_INIT_EXPLAINED,
            recomputed=data.get("random_init_knn_accuracy_recomputed"),
            per_class=_table(
                ["class", "eval images", "linear probe accuracy"],
                [
                    (name, eval_counts.get(name, "-"), acc)
                    for name, acc in sorted(ev.get("per_class_accuracy", {}).items())
                ],
            )
            if ev.get("per_class_accuracy")
            else None,
            figures={name: {"src": data_uri(path), "caption": captions[name]} for name, path in figures.items()},
            rejected=_table(["file", "step", "reason"], rejected),
            anomalies=_table(
                ["split", "feature", "anomaly", "description"],
                [(a["split"], a["feature"], a["short"], a["description"]) for a in data.get("anomalies") or []],
            ),
            anomalies_explained=ANOMALIES_EXPLAINED,
            timings_start=Markup(TIMINGS_START),
            timings_end=Markup(TIMINGS_END),
            index_gate=_table([], index_gate_rows(index["gate"])) if index.get("gate") else None,
            projector_dir=index.get("projector_dir"),
            # JSON in a <script> element is not HTML-escaped: only "</" could end it early.
            data_json=Markup(json.dumps(data, default=str).replace("</", "<\\/")),
        )
    )
