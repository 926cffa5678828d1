"""The `dev` script's cheap paths, without installing anything: its usage, a mistyped command refused
before any install, and a venv already set up for this pyproject.toml (its stamp present) used at once
with one line saying so, the command and its arguments handed to the venv's python."""
from __future__ import annotations

import hashlib
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def dev(*args: str, venv) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", os.path.join(ROOT, "dev"), *args], env=dict(os.environ, LEPTONC_VENV=str(venv)),
                          capture_output=True, text=True, timeout=60)


def ready_venv(path):
    """A venv folder stamped as set up for this pyproject.toml, whose python prints its arguments."""
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        stamp = ".installed-" + hashlib.sha256(f.read()).hexdigest()[:16]
    (path / "bin").mkdir(parents=True)
    (path / stamp).touch()
    python = path / "bin" / "python"
    python.write_text('#!/bin/sh\necho "python $*"\n')
    python.chmod(0o755)
    return path


def test_help_and_a_mistyped_command_install_nothing(tmp_path):
    venv = tmp_path / "venv"
    run = dev("--help", venv=venv)
    assert run.returncode == 0 and run.stdout.startswith("usage: bash dev example")
    run = dev("exampel", venv=venv)
    assert run.returncode == 2 and run.stderr.startswith("usage: bash dev example") and not run.stdout
    assert not venv.exists()


def test_a_venv_set_up_for_this_pyproject_is_used_at_once(tmp_path):
    venv = ready_venv(tmp_path / "venv")
    run = dev("example", "--runs", "3", venv=venv)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [f"leptonc: {venv} is ready (delete it to reinstall)",
                                       "python examples/run_example.py --runs 3"]
    run = dev("test", "-k", "dev_setup", venv=venv)
    assert run.stdout.splitlines()[1] == "python -m pytest -q -n 2 -k dev_setup"


def test_a_failing_step_is_named_and_its_error_shown(tmp_path):
    (tmp_path / "file").write_text("")
    venv = tmp_path / "file" / "venv"  # inside a file: `python3 -m venv` fails at once
    run = dev("example", venv=venv)
    assert run.returncode == 1
    assert run.stdout == f"leptonc: [1/4] creating {venv} ... "
    assert "Not a directory" in run.stderr or "File exists" in run.stderr, run.stderr
    assert run.stderr.rstrip().endswith("failed (the lines above say why); run 'bash dev example' again to retry")


def test_the_slow_marker_help_names_what_pytest_accepts():
    """The marker's help (pytest --markers) and the README name `-m slow` and `-m ""`, which pytest takes;
    `--runslow`, which it rejects, appears in neither."""
    import sys

    done = subprocess.run([sys.executable, "-m", "pytest", "--markers"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    help_line = next(line for line in done.stdout.splitlines() if line.startswith("@pytest.mark.slow"))
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    assert "--runslow" not in help_line + readme
    assert "-m slow" in help_line and "-m slow` runs only" in readme
    for marks in ("slow", ""):
        done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:xdist", "-m", marks,
                               "tests/test_dev_setup.py"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode in (0, 5), done.stdout + done.stderr  # 5: nothing collected under -m slow
