"""User errors on the command line: one line on stderr, exit 2; a traceback only with --debug."""
import subprocess
import sys


def leptonc(*args):
    return subprocess.run([sys.executable, "-m", "leptonc.cli", *args], capture_output=True, text=True)


def test_user_error_is_one_line_and_exit_2(tmp_path):
    r = leptonc("ir", str(tmp_path / "nowhere.py") + ":build")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_debug_shows_the_traceback(tmp_path):
    r = leptonc("--debug", "ir", str(tmp_path / "nowhere.py") + ":build")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_bad_model_spec(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def build():\n    return 42\n")
    r = leptonc("ir", f"{src}:build")
    assert r.returncode == 2 and "must return (module, example_inputs)" in r.stderr
    r = leptonc("ir", f"{src}:missing")
    assert r.returncode == 2 and "has no function 'missing'" in r.stderr
