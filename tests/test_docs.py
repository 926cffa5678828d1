"""The code blocks of README.md and docs/*.md run as written, so the docs cannot rot.

A page's blocks run in order, in one fresh folder and one Python process: ```python blocks in one namespace,
```sh blocks (and blocks with no language) in bash, stopping at the first failing command. Other languages
(toml, text, mlir) are not code to run. A comment on the line before a block says when it is not run as code:

    <!-- not run: WHY -->     an illustration, or a command too long or needing hardware (a GPU, a TPU)
    <!-- file: NAME -->       a file the page asks the reader to save: written to NAME, not run

The folder holds what the pages assume a reader has (`write_fixture`): model.onnx (a small MLP with input x:
f32[2, 128]) and x.npy; the Python namespace starts with that MLP as `model` and `module`, its input as `x` (a
torch tensor), `example_inputs` and `x_numpy`. LEPTONC_HOME (the trust key store) is a fresh folder per page,
LEPTONC_CACHE_DIR one for all pages (the C build cache, as a reader's machine keeps it).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["README.md"] + sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))
# (the pages on lossy passes and on XLA compile more, and slower, than the default suite should wait for)
SLOW_PAGES = {"docs/precision.md", "docs/sparsity.md", "docs/stablehlo.md"}
SHELL = {"", "sh", "bash", "console", "shell"}
FENCE = re.compile(r"^```(\S*)\s*$")
MARKER = re.compile(r"^<!--\s*(not run|file)\b:?\s*(.*?)\s*-->$")


@dataclass
class Block:
    page: str
    line: int  # of the opening fence
    lang: str
    text: str
    marker: tuple[str, str] | None  # ("not run", why) or ("file", name)

    @property
    def runs(self) -> bool:
        return self.marker is None and (self.lang == "python" or self.lang in SHELL)


def blocks(page: str) -> list[Block]:
    """Every fenced block of a page, with the marker comment on the line before it."""
    lines = (ROOT / page).read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        assert end is not None, f"{page}:{i + 1}: a code block that is never closed"
        marker = MARKER.match(lines[i - 1].strip()) if i else None
        found.append(Block(page, i + 1, fence.group(1), "\n".join(lines[i + 1:end]) + "\n",
                           (marker.group(1), marker.group(2)) if marker else None))
        i = end + 1
    return found


def example():
    """The MLP the pages call `model`, and its input."""
    import torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(128, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)).eval()
    return module, torch.randn(2, 128)


def write_fixture(folder: Path) -> None:
    """model.onnx and x.npy in `folder`."""
    import warnings

    import numpy as np
    import torch

    module, x = example()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the ONNX exporter's deprecation notes)
        torch.onnx.export(module, (x,), str(folder / "model.onnx"), input_names=["x"], output_names=["y"],
                          dynamo=False)
    np.save(folder / "x.npy", x.numpy())


def run_page(page: str, folder: str) -> None:
    """Run a page's blocks in `folder` (in this process: the test runs it in a subprocess of its own)."""
    os.chdir(folder)
    namespace = {}
    for block in blocks(page):
        where = f"{page}:{block.line}"
        if block.marker and block.marker[0] == "file":
            Path(block.marker[1]).write_text(block.text)
        elif block.runs and block.lang == "python":
            if not namespace:
                module, x = example()
                namespace = {"model": module, "module": module, "x": x, "example_inputs": (x,), "x_numpy": x.numpy()}
            exec(compile(block.text, where, "exec"), namespace)
        elif block.runs:
            done = subprocess.run(["bash", "-e", "-c", block.text], capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"{where}: the shell block failed (exit {done.returncode}):\n{block.text}\n"
                         f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}")


def test_every_block_is_runnable_or_marked():
    """A block of shell or Python either runs or says why not; a marker names a reason or a file."""
    for page in PAGES:
        for block in blocks(page):
            if block.marker:
                assert block.marker[1], f"{page}:{block.line}: <!-- {block.marker[0]}: ... --> needs its reason/name"
    assert any(b.runs for page in PAGES for b in blocks(page))


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """The fixture files, and the compile cache all pages share."""
    folder = tmp_path_factory.mktemp("docs")
    write_fixture(folder)
    return folder


@pytest.mark.parametrize("page", [pytest.param(p, marks=pytest.mark.slow) if p in SLOW_PAGES else p
                                  for p in PAGES])
def test_page_runs(page, shared, tmp_path):
    if not any(b.runs or (b.marker and b.marker[0] == "file") for b in blocks(page)):
        pytest.skip(f"{page} has no block to run")
    env = dict(os.environ, LEPTONC_CACHE_DIR=str(shared / "cache"), LEPTONC_HOME=str(tmp_path / "home"),
               PYTHONPATH=str(ROOT), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("LEPTONC_TRUSTED_KEYS", None)
    work = tmp_path / "work"
    work.mkdir()
    for name in ("model.onnx", "x.npy"):
        shutil.copy(shared / name, work / name)
    done = subprocess.run([sys.executable, "-c", f"from tests.test_docs import run_page; run_page({page!r}, "
                                                 f"{str(work)!r})"], env=env, capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr[-6000:]
