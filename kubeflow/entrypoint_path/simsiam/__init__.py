"""`simsiam.EmbeddingIndex`: the name under which Kubeflow V2 containers find the index's artifact class.

TFX's Kubeflow V2 compiler writes a custom artifact type's TYPE_NAME (`simsiam.EmbeddingIndex`) as
its schema title, and the container entry point imports the class at that dotted path
(tfx/orchestration/kubeflow/v2/container/kubeflow_v2_entrypoint_utils.py, `_retrieve_class_path`;
tensorflow/tfx#6102): without this module the EmbeddingIndexer and RunReport steps cannot start
there. Imported only by that entry point.
"""

from components.index.embedding_index import EmbeddingIndexArtifact as EmbeddingIndex  # noqa: F401
