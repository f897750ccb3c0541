"""The pipeline's component ids, one name each.

`create_pipeline` (pipeline/pipeline.py, with pipeline/ingestion.py) gives each step its id from here, and
everything that finds a step's outputs by id (the run summary, `simsiam-tfx ingest` and `report`, the
Kubeflow runners, the benchmarks) reads it from here. The ImageExampleGen's id is EXAMPLE_GEN_ID in
components/ingest/component.py, whose factories set it. No imports: commands use these ids before
TensorFlow loads.
"""

TRANSFORM_ID = "Transform"
SIMSIAM_TRAINER_ID = "SimSiamTrainer"
PROBE_TRAINER_ID = "LinearProbeTrainer"
EVALUATOR_ID = "Evaluator"
BASELINE_GATE_ID = "BaselineGate"
LABEL_FREE_EVALUATOR_ID = "LabelFreeEvaluator"
PUSHER_ID = "Pusher"
EMBEDDING_INDEXER_ID = "EmbeddingIndexer"
RUN_REPORT_ID = "RunReport"
EXAMPLE_VALIDATOR_ID = "ExampleValidator"
