"""`simsiam-tfx`: one entry point, one module per subcommand.

Subcommand modules are imported only when needed, so `--help` answers in well
under a second without loading TensorFlow. Each module in COMMANDS defines
`HELP` (one line), `add_arguments(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence

COMMANDS: dict[str, str] = {
    "ingest": "pipeline.commands.ingest",
    "run": "pipeline.commands.run",
    "embed": "pipeline.commands.embed",
    "search": "pipeline.commands.search",
    "export-vector-search": "pipeline.commands.export_vector_search",
    "report": "pipeline.commands.report",
    "compile-kubeflow": "kubeflow.commands.compile_kubeflow",
    "submit-vertex": "kubeflow.commands.submit_vertex",
}

DESCRIPTION = """\
Self-supervised image embeddings (SimSiam) as a TFX pipeline.

typical use:
  simsiam-tfx ingest --data-dir ../shared/flowers/flower_photos --output runs/ingest
  simsiam-tfx run --profile smoke --data-dir ../shared/flowers/flower_photos --output runs/smoke
  simsiam-tfx embed --model runs/smoke/serving/<version> --output index.npz photos/
  simsiam-tfx search --index index.npz --model runs/smoke/serving/<version> --query rose.jpg

`simsiam-tfx COMMAND --help` explains each command.
"""


def _available_commands() -> dict[str, object]:
    """Imports the modules of the subcommands that exist in this checkout."""
    modules = {}
    for name, path in COMMANDS.items():
        try:
            modules[name] = importlib.import_module(path)
        except ModuleNotFoundError as err:
            if not (path == err.name or path.startswith(f"{err.name}.")):
                raise  # the command exists but one of its imports is broken: say so
    return modules


def _version() -> str:
    """This package's installed version (setup.py), without importing anything heavy."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("simsiam-tfx")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simsiam-tfx", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _available_commands().items():
        cmd = sub.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # TFX 1.16 needs Python 3.10, and every google-cloud import then warns that 3.10 is unsupported.
    warnings.filterwarnings("ignore", message=".*non-supported Python version.*", category=FutureWarning)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
