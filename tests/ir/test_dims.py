import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leptonc.ir import dims as D


def test_canonical_spelling():
    assert D.canonical("S*B") == "B*S"
    assert D.canonical("B + B") == "2*B"
    assert D.canonical("1 + S") == "S + 1"
    assert D.canonical("B - B") == 0
    assert D.canonical(7) == 7


def test_arithmetic():
    assert D.mul("B", "S") == "B*S"
    assert D.mul("B", 0) == 0
    assert D.add("S", 1) == "S + 1"
    assert D.sub("S + 1", 1) == "S"
    assert D.product(["B", 12, "S", 64]) == "768*B*S"
    assert D.divide_exact("768*B*S", "B*S") == 768
    assert D.divide_exact("B*S*12", 12) == "B*S"
    assert D.divide_exact("B + 1", "B") == D.UNKNOWN
    assert D.floordiv("2*S", 2) == "S"
    assert D.floordiv("S", 2) == D.UNKNOWN
    assert D.mul("?", "B") == D.UNKNOWN


def test_equality_and_compatibility():
    assert D.same("B*S", "S*B")
    assert not D.same("?", "?")
    assert D.compatible("B*S", "S*B") and D.compatible("?", 3) and not D.compatible(2, 3)
    assert not D.compatible("B", 3) and not D.compatible("B", "C")  # would pin B, or tie B to C


def test_relation_names_the_pinned_size():
    assert "pins the dynamic dim B to 1" in D.relation("8*B", 8)
    assert "pins the dynamic dim B to 3/2, which is no size" in D.relation("2*B", 3)
    assert "needs B = C" in D.relation("B", "C")


def test_provably_negative():
    assert D.provably_negative(-1) and D.provably_negative("-B - 1")
    assert not D.provably_negative("B - 1") and not D.provably_negative(0) and not D.provably_negative("?")


def test_evaluate():
    assert D.evaluate("2*B*S + 1", {"B": 3, "S": 5}) == 31
    with pytest.raises(KeyError):
        D.evaluate("B", {})
    with pytest.raises(KeyError):
        D.evaluate("?", {})


def test_bad_expression():
    with pytest.raises(ValueError):
        D.canonical("B / S")


def test_contiguous_strides():
    assert D.contiguous_strides((2, 3, 4)) == [12, 4, 1]
    assert D.contiguous_strides(("B", "S", 8)) == ["8*S", 8, 1]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_view_strides_agree_with_numpy(data):
    """A reshape of a strided view (a slice along one axis of a contiguous array): the strides view_strides
    gives address the same elements as numpy's reshape, or it says the reshape needs a copy when numpy's
    result is not a view."""
    shape = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    axis = data.draw(st.integers(0, len(shape) - 1))
    full = list(shape)
    full[axis] += data.draw(st.integers(0, 3))
    base = np.arange(int(np.prod(full))).reshape(full)
    view = base[tuple(slice(0, n) for n in shape)]
    size = int(np.prod(shape))
    factors = [f for f in range(1, size + 1) if size % f == 0]
    new, left = [], size
    while left > 1:
        f = data.draw(st.sampled_from([f for f in factors if left % f == 0 and f > 1]))
        new.append(f)
        left //= f
    new += [1] * data.draw(st.integers(0, 1))
    got = D.view_strides(shape, D.contiguous_strides(full), new)
    want = view.reshape(new)
    if got is None:
        assert not np.shares_memory(want, base)  # numpy copies too
        return
    picked = np.lib.stride_tricks.as_strided(base, new, [s * base.itemsize for s in got])
    np.testing.assert_array_equal(picked, want)


def test_view_strides_with_symbols():
    assert D.view_strides(("B", "S", 768), D.contiguous_strides(("B", "S", 768)), ("B", "S", 12, 64)) == \
        ["768*S", 768, 64, 1]
    assert D.view_strides(("B", "S", 128), ["384*S", 384, 1], ("B", "S", 2, 64)) == ["384*S", 384, 64, 1]
    assert D.view_strides((2, 16, 128), [6144, 384, 1], (2, 2048)) is None  # the rows are not adjacent
