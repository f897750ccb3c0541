"""`system.HTML`: the name under which Kubeflow V2 containers find the run report's artifact class.

TFX's Kubeflow V2 compiler writes a custom artifact type's TYPE_NAME as its schema title, and the
container entry point imports the class at that dotted path (tfx/orchestration/kubeflow/v2/container/
kubeflow_v2_entrypoint_utils.py, `_retrieve_class_path`; tensorflow/tfx#6102). The report's type
must be titled `system.HTML` for the KFP v2 / Vertex AI UI to show it as a page, so `system.HTML`
must import: this module. Imported only by that entry point.
"""

from components.report.component import HtmlReport as HTML  # noqa: N814, F401 - the name the schema title gives
