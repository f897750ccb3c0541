"""`simsiam-tfx`: one entry point, one module per subcommand.

Subcommand modules are imported only when needed, so `--help` answers in well
under a second without loading TensorFlow. Each module in COMMANDS defines
`HELP` (one line), `add_arguments(parser)` and `run(args) -> int`, and may define `INTERRUPTED`:
what a rerun after Ctrl-C reuses, printed when the command is interrupted.

Ctrl-C (SIGINT) ends any command at once with exit status 130 and one line. It does not raise
KeyboardInterrupt: inside TensorFlow, Beam or a finaliser that exception can be swallowed
("Exception ignored in ...") and the run goes on. Exiting at once loses nothing that a kill would
not: outputs are written whole or not at all, the pipeline's finished steps are recorded in ML
Metadata, and the SimSiam Trainer resumes from its last checkpoint (tests/e2e/test_pipeline_e2e.py
kills it mid-training and checks the resume).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
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
    "submit-kfp": "kubeflow.commands.submit_kfp",
    "run-compiled": "kubeflow.commands.run_compiled",
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


EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a command ended by Ctrl-C


def exit_on_interrupt(message: str = "") -> None:
    """From now on, SIGINT prints `interrupted[: message]` on stderr and exits with 130 at once
    (a no-op outside the main thread, where Python cannot set signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame) -> None:
        try:
            sys.stdout.flush()
            print(f"\ninterrupted{': ' + message if message else ''}", file=sys.stderr, flush=True)
        finally:
            os._exit(EXIT_INTERRUPTED)

    signal.signal(signal.SIGINT, handler)


def main(argv: Sequence[str] | None = None) -> int:
    previous = signal.getsignal(signal.SIGINT)  # restored on return: main() also runs inside tests
    exit_on_interrupt()  # first: Ctrl-C while TensorFlow loads ends as cleanly as later
    try:
        return _main(argv)
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, previous)


def _main(argv: Sequence[str] | None) -> int:
    # TFX 1.16 needs Python 3.10, and every google-cloud import then warns that 3.10 is unsupported.
    warnings.filterwarnings("ignore", message=".*non-supported Python version.*", category=FutureWarning)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    from pipeline.local_runner import quiet_native_logs  # standard library only: no TensorFlow yet

    quiet_native_logs(getattr(args, "verbose", False))
    exit_on_interrupt(getattr(sys.modules[args._run.__module__], "INTERRUPTED", ""))
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
