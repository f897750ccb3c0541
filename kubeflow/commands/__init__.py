"""`simsiam-tfx compile-kubeflow` and `simsiam-tfx submit-vertex` (see pipeline/cli.py)."""
