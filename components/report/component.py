"""RunReport: the run's `report.html`, a pipeline artifact the Kubeflow Pipelines / Vertex AI UI renders.

A Python-function TFX component, the pipeline's last step. From the artifacts of the run it gathers
the gate (blessed, pushed, the Evaluator's thresholds and validation result), the quality against
the untrained baselines, per-class accuracy, the training curves, a t-SNE map and nearest-neighbour
grids of the trained and of the random-init encoder side by side, and the files ingestion rejected
(components/report/data.py); components/report/html.py renders them into one self-contained page
(the Jinja2 template `report.html.j2`).

Why `HtmlReport` is a `ValueArtifact` with TYPE_NAME "system.HTML": the Kubeflow V2 compiler encodes a
custom artifact type's TYPE_NAME as the schema title (tfx/orchestration/kubeflow/v2/compiler_utils.py,
`get_artifact_schema`), and the KFP v2 / Vertex AI UI renders artifacts titled `system.HTML` by
showing the file at the artifact's URI (KFP's `dsl.HTML`). A ValueArtifact's URI is that file (TFX's
local runners make it `<folder>/value`), so the page is written to the URI itself, not into a folder,
and the data it shows goes beside it as `report.json` (`report_data_path`): what `OUT/summary.json`
is built from, so the numbers are gathered once per run.

Time per component is not known inside the pipeline (the step runs before the run ends): the page
says where to find it, and `simsiam-tfx run` puts the table in its copy, OUT/report.html.

No `from __future__ import annotations` here: TFX reads the component's type hints as objects.
"""

import json
import os

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types import standard_artifacts
from tfx.types.value_artifact import ValueArtifact

from components import features as F
from components.index.embedding_index import EmbeddingIndexArtifact
from components.report import DEFAULT_QUERIES_PER_CLASS


class HtmlReport(ValueArtifact):
    """One self-contained HTML page, stored at the artifact's URI (a file, not a folder)."""

    TYPE_NAME = "system.HTML"  # the schema title the KFP v2 / Vertex AI UI renders as HTML

    def encode(self, value: str) -> bytes:
        return value.encode("utf-8")

    def decode(self, serialized_value: bytes) -> str:
        return serialized_value.decode("utf-8")


def report_data_path(report_uri: str) -> str:
    """`report.json` beside the page at `report_uri`: in the artifact's folder (`<folder>/value` locally)."""
    return f"{os.path.dirname(report_uri.rstrip('/'))}/{F.REPORT_DATA_FILE}"


def figures_dir(report_uri: str) -> str:
    """The report's PNG/JPEG figures, beside the page: `<folder>/figures/` (`<folder>/value` is the page)."""
    return f"{os.path.dirname(report_uri.rstrip('/'))}/figures"


@component
def RunReport(  # noqa: N802 - TFX component names are class-like
    examples: InputArtifact[standard_artifacts.Examples],
    transform_graph: InputArtifact[standard_artifacts.TransformGraph],
    simsiam_model: InputArtifact[standard_artifacts.Model],
    simsiam_run: InputArtifact[standard_artifacts.ModelRun],
    evaluation: InputArtifact[standard_artifacts.ModelEvaluation],
    blessing: InputArtifact[standard_artifacts.ModelBlessing],
    pushed_model: InputArtifact[standard_artifacts.PushedModel],
    embedding_index: InputArtifact[EmbeddingIndexArtifact],
    report: OutputArtifact[HtmlReport],
    simsiam_config: Parameter[str],
    accuracy_floor: Parameter[float],
    probe_run: InputArtifact[standard_artifacts.ModelRun] = None,
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies] = None,
    queries_per_class: Parameter[int] = DEFAULT_QUERIES_PER_CLASS,
    profile: Parameter[str] = "",
) -> None:
    """Writes the run's report page to `report.uri` and its data beside it (see the module docstring).
    `probe_run` is absent when the data has no labels; `evaluation` and `blessing` are then the
    LabelFreeEvaluator's. `anomalies`: the ExampleValidator's, shown on the page (optional so that a
    pipeline compiled before it still runs). `profile`: the run's profile name, shown with its recipe.
    The figures are kept beside the page (`figures_dir`): `simsiam-tfx run` copies them, it does not
    draw its own."""
    from tfx.types import artifact_utils

    from components.report.data import build_report

    uris = {
        "examples": examples.uri,
        "transform_graph": transform_graph.uri,
        "simsiam_model": simsiam_model.uri,
        "simsiam_run": simsiam_run.uri,
        "probe_run": probe_run.uri if probe_run else None,
        "evaluation": evaluation.uri,
        "blessing": blessing.uri,
        "embedding_index": embedding_index.uri,
        "anomalies": anomalies.uri if anomalies else None,
    }
    status = {
        "blessed": blessing.get_int_custom_property("blessed") == 1,
        "pushed": pushed_model.get_int_custom_property("pushed") == 1,
        "serving_model_dir": pushed_model.get_string_custom_property("pushed_destination"),
        "projector_dir": embedding_index.get_string_custom_property("projector_dir"),
    }
    page, data = build_report(
        uris,
        artifact_utils.decode_split_names(examples.split_names),
        status,
        json.loads(simsiam_config),
        accuracy_floor,
        queries_per_class,
        figures_dir=figures_dir(report.uri),
        profile=profile,
    )
    with fileio.open(report.uri, "w") as f:
        f.write(page)
    with fileio.open(report_data_path(report.uri), "w") as f:
        json.dump(data, f, indent=1, default=str)
    recomputed = data["random_init_knn_accuracy_recomputed"]
    print(
        f"[RunReport] {report.uri} ({len(page) / 1e6:.1f} MB; random-init kNN recomputed "
        f"{recomputed if recomputed is None else round(recomputed, 4)}, Trainer's "
        f"{data['random_init_knn_accuracy']})",
        flush=True,
    )
