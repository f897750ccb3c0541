"""The foundation: pinned versions are the installed ones, and the CLI answers --help."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, ver = line.split("==")
            pins[name.strip().lower().replace("_", "-")] = ver.strip()
    return pins


@pytest.mark.parametrize(
    "package",
    [
        "tfx",
        "tensorflow",
        "keras",
        "apache-beam",
        "tensorflow-transform",
        "tensorflow-model-analysis",
        "jax",
        "kfp",
        "dill",
        "numpy",
        "faiss-cpu",
    ],
)
def test_installed_versions_equal_the_pins(package: str) -> None:
    pins = _pins()
    assert package in pins, f"{package} is not pinned in requirements.lock"
    assert version(package) == pins[package]


def test_stack_is_tfx_1_16_with_keras_3() -> None:
    assert _pins()["tfx"] == "1.16.0"
    assert version("keras").startswith("3.")
    assert sys.version_info[:2] == (3, 10)


def test_every_pin_is_exact() -> None:
    lines = [ln for ln in (REPO / "requirements.lock").read_text().splitlines() if ln and not ln.startswith("#")]
    loose = [ln for ln in lines if "==" not in ln]
    assert not loose, f"unpinned lines in requirements.lock: {loose}"


def test_cli_help_lists_the_commands_without_loading_tensorflow() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from pipeline import cli\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    cli.main(['--help']) if False else cli.build_parser().print_help()\n"
        "print(buf.getvalue())\n"
        "print('TF_LOADED' if 'tensorflow' in sys.modules else 'TF_NOT_LOADED')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert "usage: simsiam-tfx" in out
    assert "TF_NOT_LOADED" in out


def test_console_script_help_exits_zero() -> None:
    exe = Path(sys.executable).parent / "simsiam-tfx"
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "simsiam-tfx COMMAND --help" in result.stdout


def test_console_script_version_is_the_installed_package() -> None:
    from importlib.metadata import version

    exe = Path(sys.executable).parent / "simsiam-tfx"
    result = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == f"simsiam-tfx {version('simsiam-tfx')}"


def test_find_python_script_rejects_a_wrong_interpreter(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYENV_ROOT": str(tmp_path), "PYTHON": "/bin/false"}
    result = subprocess.run(["bash", str(REPO / "scripts/find-python310")], capture_output=True, text=True, env=env)
    if result.returncode == 0:  # this machine has /root/.pyenv/versions/3.10.*: it must be a real 3.10
        found = result.stdout.strip()
        ver = subprocess.run([found, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
        assert ver.stdout.strip() == "(3, 10)"
    else:
        assert "Python 3.10 is required" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_run_rejects_a_missing_data_dir_at_once() -> None:
    exe = Path(sys.executable).parent / "simsiam-tfx"
    result = subprocess.run([str(exe), "run", "--data-dir", "/no/such/folder"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --data-dir /no/such/folder is not a folder"


def test_every_command_in_the_readme_quickstart_parses() -> None:
    """Issue 27 point 3: the quickstart is what a newcomer types. Each `simsiam-tfx` line in it must be
    accepted by the command's own parser (a renamed or required flag breaks this test, not the reader)."""
    import shlex

    from pipeline.cli import build_parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("## Quickstart", 1)[1].split("\n\n", 2)[1]  # the indented command block
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    commands = [shlex.split(line)[1:] for line in lines if line.startswith("simsiam-tfx ")]
    assert [argv[0] for argv in commands] == ["run", "run", "search", "embed"]
    parser = build_parser()
    for argv in commands:
        argv = ["x" if arg == "..." else arg for arg in argv]  # `--index ...`: the paths the run prints
        args = parser.parse_args(argv)
        assert args.command == argv[0]
    assert "make setup" in lines[0] and "source .venv/bin/activate" in lines[1] and "make run" in lines[-1]
