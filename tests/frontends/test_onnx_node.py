"""The ONNX backend node test suite through leptonc's importer and reference interpreter.

The cases are generated into a temporary folder (tests/frontends/onnx_cases.py). Every case must pass
except those listed, with the reason, in onnx_node_failures.txt; the pass count must not drop below
the figure recorded there. ONNX Runtime's count in the same harness: benchmarks/onnx_backend_ort.py.
"""
from __future__ import annotations

import os

import pytest

from . import onnx_cases as oc

FAILURES = os.path.join(os.path.dirname(__file__), "onnx_node_failures.txt")

pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory):
    return oc.generate_node_cases(str(tmp_path_factory.mktemp("onnx_node_cases")))


def test_node_suite_does_not_regress(node_dir):
    listed = oc.read_failure_list(FAILURES)
    results = oc.run_node_suite(node_dir)
    passed = sum(r == "pass" for r in results.values())
    floor = len(results) - len([n for n in listed if n in results])
    new_failures = {n: oc.short_reason(r) for n, r in results.items() if r != "pass" and n not in listed}
    assert not new_failures, "node cases that used to pass fail now:\n" + "\n".join(
        f"  {n}: {r}" for n, r in sorted(new_failures.items()))
    assert passed >= floor, f"{passed} of {len(results)} node cases pass, fewer than the recorded {floor}"
    unknown = [n for n in listed if n not in results]
    assert not unknown, f"onnx_node_failures.txt lists cases that no longer exist: {unknown}"


def test_failure_list_is_small_and_explained():
    listed = oc.read_failure_list(FAILURES)
    assert all(reason for reason in listed.values()), "every listed failure needs a reason"
    assert len(listed) <= 1884 - 1793, f"{len(listed)} listed failures: the floor is at least 1793 passing cases"
