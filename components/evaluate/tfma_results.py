"""What the TFX Evaluator (TensorFlow Model Analysis) wrote: the accuracy it measured and why it did or
did not bless. Read by the BaselineGate (components/evaluate/baseline_gate.py), the run report and
the run summary, through TFMA's own loaders."""

from __future__ import annotations

from typing import Any


def evaluation_metrics(evaluation_uri: str) -> dict[str, Any]:
    """Overall and per-class accuracy from the Evaluator's output (TFMA `load_eval_result`)."""
    import tensorflow_model_analysis as tfma

    result = tfma.load_eval_result(evaluation_uri)
    metrics: dict[str, Any] = {"per_class_accuracy": {}}
    for slice_key, values in result.slicing_metrics:
        flat = values.get("", {}).get("", {})
        accuracy = flat.get("sparse_categorical_accuracy", {}).get("doubleValue")
        count = flat.get("example_count", {}).get("doubleValue")
        if not slice_key:
            metrics.update(accuracy=accuracy, example_count=count)
        else:
            name = slice_key[0][1]
            metrics["per_class_accuracy"][name.decode() if isinstance(name, bytes) else str(name)] = accuracy
    return metrics


def gate_result(evaluation_uri: str) -> dict[str, Any]:
    """The Evaluator's validation: {"validation_ok": bool or None (no thresholds), "failures": [reason in
    plain words]} (TFMA `load_validation_result`)."""
    import tensorflow_model_analysis as tfma

    try:
        result = tfma.load_validation_result(evaluation_uri)
    except (OSError, ValueError, IndexError):  # an evaluation without thresholds writes no validation file
        return {"validation_ok": None, "failures": []}
    failures = []
    for per_slice in result.metric_validations_per_slice:
        for failure in per_slice.failures:
            failures.append(_failure_text(failure))
    return {"validation_ok": bool(result.validation_ok), "failures": failures}


def _failure_text(failure) -> str:
    """One TFMA `ValidationFailure` in plain words: which threshold, the measured value, the limit."""
    key, value = failure.metric_key, failure.metric_value.double_value.value
    name = "accuracy" if key.name == "sparse_categorical_accuracy" else key.name
    if key.is_diff:  # a change threshold: the candidate minus the last blessed model
        return f"{name} {value:+.4f} against the last pushed model (no regression is allowed)"
    bound = failure.metric_threshold.value_threshold.lower_bound
    if failure.metric_threshold.value_threshold.HasField("lower_bound"):
        return f"{name} {value:.4f} is below the floor {bound.value:g}"
    return f"{name}: {value:.4f} ({failure.message or 'threshold not met'})"
