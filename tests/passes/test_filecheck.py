"""The FileCheck matcher itself: each directive passes and fails where it should."""
import pytest

from tests.filecheck import CheckFailure, filecheck

OUT = "graph @g(%x: f32[4]) -> (f32[4]) {\n  %a = exp(%x) : f32[4]\n  %b = neg(%a) : f32[4]\n  return %b\n}\n"


@pytest.mark.parametrize("checks", [
    "# CHECK: exp\n# CHECK: neg",
    "# CHECK-LABEL: graph @g\n# CHECK-NEXT: %a = exp\n# CHECK-NEXT: %b = neg",
    "# CHECK: exp\n# CHECK-NOT: transpose\n# CHECK: return %b",
    "# CHECK: %{{[a-z]+}} = neg(%a) : f32[{{[0-9]+}}]",
    "# CHECK: neg\n# CHECK-NOT: exp",
])
def test_passes(checks):
    filecheck(OUT, checks)


@pytest.mark.parametrize("checks, why", [
    ("# CHECK: transpose", "not found"),
    ("# CHECK: neg\n# CHECK: exp", "not found"),  # order matters
    ("# CHECK: graph\n# CHECK-NEXT: neg", "not on the next line"),
    ("# CHECK: exp\n# CHECK-NOT: neg\n# CHECK: return", "found on output line 3"),
    ("# CHECK: graph\n# CHECK-NOT: exp", "found on output line 2"),
    ("# CHECK: f32[{{[5-9]}}]", "not found"),
])
def test_fails(checks, why):
    with pytest.raises(CheckFailure, match=why):
        filecheck(OUT, checks)


@pytest.mark.parametrize("checks", ["no directives here", "# CHECK-DAG: exp", "# CHECK-NEXT: graph"])
def test_bad_directives(checks):
    with pytest.raises(ValueError):
        filecheck(OUT, checks)
