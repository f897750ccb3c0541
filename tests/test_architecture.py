"""The package layering stays one-directional (docs/ARCHITECTURE.md), checked by walking every import.

    models  <-  serving  <-  components  <-  pipeline  <-  kubeflow  <-  benchmarks
    (pure Keras)  (client,     (TFX steps)     (assembly,     (KFP v2 /      (measurements;
                  index format)                 runners, CLI)  Vertex AI)     nothing imports them)

A package may import the packages on its left, never one on its right; nothing in the product
imports `benchmarks` or `tests`; `models/` imports neither TensorFlow nor TFX, so it runs on a
machine that has only JAX. Every TFX step is defined in `components/`, so `pipeline/` only wires them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ["models", "serving", "components", "pipeline", "kubeflow", "benchmarks"]
ALLOWED = {package: set(LAYERS[: i + 1]) for i, package in enumerate(LAYERS)}
BACKEND_ONLY = {"tensorflow", "tfx", "tensorflow_transform", "tensorflow_model_analysis", "apache_beam"}
# The one TensorFlow import in models/: inside SimSiam.augment, executed only on the TensorFlow
# backend (to XLA-compile the augmentation); the JAX path never reaches it.
MODELS_TF_EXCEPTIONS = {("models/simsiam.py", "augment"), ("models/distribute.py", "replica_context")}


def _imports(path: Path) -> list[tuple[str, str | None]]:
    """(top-level module name, enclosing function or None) of every import statement in `path`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[str, str | None]] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, child.name)
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name.split(".")[0], function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.append((child.module.split(".")[0], function))
            visit(child, function)

    visit(tree, None)
    return found


def _modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


@pytest.mark.parametrize("package", LAYERS)
def test_packages_import_only_layers_below_them(package: str) -> None:
    assert _modules(package), f"no modules found under {package}/"
    wrong = []
    for path in _modules(package):
        for module, _ in _imports(path):
            if module in LAYERS and module not in ALLOWED[package] or module == "tests":
                wrong.append(f"{path.relative_to(REPO)} imports {module}")
    assert not wrong, (
        "imports against the layering (models <- serving <- components <- pipeline <- kubeflow "
        "<- benchmarks):\n" + "\n".join(wrong)
    )


def test_models_need_neither_tensorflow_nor_tfx() -> None:
    wrong = [
        f"{path.relative_to(REPO)}: {module} (in {function or 'module scope'})"
        for path in _modules("models")
        for module, function in _imports(path)
        if module in BACKEND_ONLY and (str(path.relative_to(REPO)), function) not in MODELS_TF_EXCEPTIONS
    ]
    assert not wrong, "models/ must stay pure Keras 3:\n" + "\n".join(wrong)


def test_the_checker_sees_function_level_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os\n\ndef f():\n    from benchmarks.plots import x\n    import tensorflow as tf\n")
    assert _imports(sample) == [("os", None), ("benchmarks", "f"), ("tensorflow", "f")]


def _tfx_imports(tree: ast.AST) -> dict[str, str]:
    """Local name -> the TFX module or object it is bound to, for every import from `tfx`:
    `from tfx import v1 as tfx` gives {"tfx": "tfx.v1"}, `import tfx.v1` {"tfx": "tfx"}."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "tfx":
                    bound[alias.asname or "tfx"] = alias.name if alias.asname else "tfx"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "tfx":
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return bound


def _is_tfx_component_class(path: str) -> bool:
    """Whether the dotted `path` names a TFX component class: TFX defines each in a module named
    `component` (`tfx.components.trainer.component`, `...example_gen.component`) or `base_*component`
    (`BaseComponent`, `BaseBeamComponent`), and re-exports them from `tfx.components` and
    `tfx.v1.components`. Its executors, drivers, artifacts and strategies live in modules of other names."""
    module = path.rpartition(".")[0].split(".")
    return module[0] == "tfx" and (module[-1] == "components" or module[-1].endswith("component"))


def _tfx_components(path: Path) -> list[str]:
    """Names of the TFX components `path` defines: functions decorated with TFX's `@component` (bare, called
    or as an attribute: `@component`, `@component(use_beam=True)`, `@decorators.component`) and classes
    with a base named `BaseComponent` (`base_component.BaseComponent` or imported by that name) or a base
    that its imports resolve to a TFX component class (`FileBasedExampleGen` imported from
    `tfx.components.example_gen.component`, `tfx.components.Trainer` with `from tfx import v1 as tfx`)."""

    def last_name(node: ast.AST) -> str | None:
        node = node.func if isinstance(node, ast.Call) else node
        return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None

    def resolved(node: ast.AST) -> str | None:
        """The dotted TFX path of a base class, through the module's imports; None if not from TFX."""
        attributes = []
        while isinstance(node, ast.Attribute):
            attributes.insert(0, node.attr)
            node = node.value
        if not isinstance(node, ast.Name) or node.id not in tfx_names:
            return None
        return ".".join([tfx_names[node.id], *attributes])

    def is_component_base(base: ast.AST) -> bool:
        return last_name(base) == "BaseComponent" or _is_tfx_component_class(resolved(base) or "")

    tree = ast.parse(path.read_text(), filename=str(path))
    tfx_names = _tfx_imports(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if any(last_name(d) == "component" for d in node.decorator_list):
                found.append(node.name)
        elif isinstance(node, ast.ClassDef) and any(is_component_base(b) for b in node.bases):
            found.append(node.name)
    return found


def test_tfx_components_are_defined_only_in_components() -> None:
    outside = [
        f"{path.relative_to(REPO)}: {name}"
        for package in LAYERS
        if package != "components"
        for path in _modules(package)
        for name in _tfx_components(path)
    ]
    assert _tfx_components(REPO / "components" / "report" / "component.py") == ["RunReport"]
    assert _tfx_components(REPO / "components" / "ingest" / "component.py") == ["ImageFolderExampleGen"]
    assert not outside, "TFX components belong in components/ (pipeline/ only wires them):\n" + "\n".join(outside)


def test_the_checker_sees_every_way_to_define_a_component(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from tfx import v1 as tfx\n"
        "from tfx.components.example_gen import component as example_gen\n"
        "from tfx.components.example_gen.component import FileBasedExampleGen\n"
        "from tfx.components.example_gen.driver import FileBasedDriver\n"
        "from tfx.dsl.components.base import base_component, base_executor\n"
        "from tfx.dsl.component.experimental import decorators\n\n"
        "@component\ndef A(): ...\n\n"
        "@component(use_beam=True)\ndef B(): ...\n\n"
        "@decorators.component\ndef C(): ...\n\n"
        "class D(base_component.BaseComponent): ...\n\n"
        "class E(BaseComponent): ...\n\n"
        "class F(FileBasedExampleGen): ...\n\n"
        "class G(tfx.components.Trainer): ...\n\n"
        "class H(example_gen.QueryBasedExampleGen): ...\n\n"
        "@staticmethod\ndef not_one(): ...\n\n"
        "class NotOne(FileBasedDriver, base_executor.BaseExecutor, tfx.dsl.experimental.ResolverStrategy): ...\n\n"
        "class NorThis(Trainer): ...\n"  # a name TFX never bound here
    )
    assert _tfx_components(sample) == ["A", "B", "C", "D", "E", "F", "G", "H"]


# Reading the user's own TFRecord files is ingestion, before any example exists (ImageExampleGen's
# TFRecord source); every read of examples goes through components/examples.py (TFXIO).
RECORD_READERS = {"TFRecordDataset", "tf_record_iterator", "TFRecordReader", "tf_record_random_reader"}
HAND_READ_EXCEPTIONS = {"components/ingest/sources.py"}


def _hand_reads(path: Path) -> list[str]:
    """The names in `RECORD_READERS` that `path` uses (as a name or an attribute: tf.data.TFRecordDataset)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return sorted(
        {
            node.attr if isinstance(node, ast.Attribute) else node.id
            for node in ast.walk(tree)
            if (isinstance(node, ast.Attribute) and node.attr in RECORD_READERS)
            or (isinstance(node, ast.Name) and node.id in RECORD_READERS)
        }
    )


def test_examples_are_read_only_through_the_one_reader() -> None:
    hand = [
        f"{path.relative_to(REPO)}: {', '.join(names)}"
        for package in LAYERS[:-1]  # the product; benchmarks read through the product's reader too
        for path in _modules(package)
        if str(path.relative_to(REPO)) not in HAND_READ_EXCEPTIONS and (names := _hand_reads(path))
    ]
    assert not hand, "read examples with components/examples.py (TFXIO), not by hand:\n" + "\n".join(hand)


def test_the_reader_checker_sees_a_hand_written_loop(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import tensorflow as tf\nfrom tensorflow.data import TFRecordDataset\n"
        "def f(files):\n    return tf.data.TFRecordDataset(files, compression_type='GZIP')\n"
    )
    assert _hand_reads(sample) == ["TFRecordDataset"]


def _imports_tfx_v1(path: Path) -> bool:
    """Whether `path` imports TFX's public `tfx.v1` (`from tfx import v1`, `import tfx.v1`, `from tfx.v1...`)."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import) and any(a.name.startswith("tfx.v1") for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            module = node.module or ""
            if module.startswith("tfx.v1") or (module == "tfx" and any(a.name == "v1" for a in node.names)):
                return True
    return False


def test_only_the_kubeflow_compile_imports_tfx_v1(tmp_path: Path) -> None:
    """`tfx.v1` imports its extensions and with them the Vertex AI client library, about 3.8 s of every
    command's start-up (docs/measurements.md, "Ingestion"): only kubeflow/, which compiles for Vertex
    AI, imports it; the rest imports TFX's modules directly."""
    offenders = [
        str(path.relative_to(REPO))
        for package in LAYERS
        if package != "kubeflow"
        for path in _modules(package)
        if _imports_tfx_v1(path)
    ]
    assert not offenders, f"import TFX's modules directly, not tfx.v1: {offenders}"
    assert _imports_tfx_v1(REPO / "kubeflow" / "runner.py")
    for line in ("from tfx import v1 as tfx", "import tfx.v1", "from tfx.v1 import dsl"):
        (tmp_path / "sample.py").write_text(f"def f():\n    {line}\n")
        assert _imports_tfx_v1(tmp_path / "sample.py"), line
