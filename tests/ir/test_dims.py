import pytest

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
    assert D.compatible("B", 3) and not D.compatible(2, 3)


def test_evaluate():
    assert D.evaluate("2*B*S + 1", {"B": 3, "S": 5}) == 31
    with pytest.raises(KeyError):
        D.evaluate("B", {})
    with pytest.raises(KeyError):
        D.evaluate("?", {})


def test_bad_expression():
    with pytest.raises(ValueError):
        D.canonical("B / S")
