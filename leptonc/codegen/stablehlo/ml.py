"""Lowering of tree_ensemble. The trees are attributes, so every root-to-leaf path is known at
emission: a sample reaches a leaf when every test along its path goes the path's way. The module
evaluates each node's test for all samples at once, ANDs them along each path, and aggregates the
leaves' weights per target."""
from __future__ import annotations

import numpy as np

from ...ir.dtypes import DType
from ...ir.types import TensorType
from .builder import Builder, Val
from .layout import slice_axis
from .linalg import dot
from .rules import lowers

COMPARE = {0: "LE", 1: "LT", 2: "GE", 3: "GT", 4: "EQ", 5: "NE"}


def tree_paths(attrs) -> list[tuple[list[tuple[int, bool]], int]]:
    """(the (node, went true) tests along the path, the leaf reached) for every path of every tree."""
    t_node, f_node = attrs["nodes_truenodeids"], attrs["nodes_falsenodeids"]
    t_leaf, f_leaf = attrs["nodes_trueleafs"], attrs["nodes_falseleafs"]
    paths = []
    for root in attrs["tree_roots"]:
        if t_leaf[root] and f_leaf[root] and t_node[root] == f_node[root]:
            paths.append(([], t_node[root]))
            continue
        stack = [(root, [])]
        while stack:
            node, tests = stack.pop()
            for went, nxt, is_leaf in ((True, t_node[node], t_leaf[node]), (False, f_node[node], f_leaf[node])):
                if is_leaf:
                    paths.append((tests + [(node, went)], nxt))
                else:
                    stack.append((nxt, tests + [(node, went)]))
    return paths


def _memberships(attrs) -> dict[int, list[float]]:
    """The value set of each 'member' node (mode 6): NaN-separated runs of membership_values."""
    sets, it = {}, iter(attrs["membership_values"])
    for i, mode in enumerate(attrs["nodes_modes"]):
        if mode == 6:
            run = []
            for v in it:
                if np.isnan(v):
                    break
                run.append(v)
            sets[i] = run
    return sets


@lowers("tree_ensemble")
def tree_ensemble(b: Builder, node, args, out, attrs):
    x = b.convert(args[0], DType.f64)
    n, targets = x.shape[0], attrs["n_targets"]
    paths = tree_paths(attrs)
    used = sorted({i for tests, _ in paths for i, _ in tests})
    members = _memberships(attrs)
    missing = attrs["missing_tracks_true"] or (0,) * len(attrs["nodes_modes"])
    column = TensorType(DType.f64, (n,))
    hits: dict[int, Val] = {}
    for i in used:  # each node's test, for every sample
        v = b.reshape(slice_axis(b, x, 1, attrs["nodes_featureids"][i], attrs["nodes_featureids"][i] + 1), (n,))
        mode = attrs["nodes_modes"][i]
        if mode == 6:
            hit = b.full(False, column.with_dtype(DType.bool))
            for m in members[i]:
                hit = b.binary("or", hit, b.compare(v, b.full(m, column), "EQ"))
        else:
            hit = b.compare(v, b.full(attrs["nodes_splits"][i], column), COMPARE[mode])
        if missing[i]:
            hit = b.binary("or", hit, b.compare(v, v, "NE"))
        hits[i] = hit
    reached = []
    for tests, _ in paths:
        r = b.full(True, column.with_dtype(DType.bool))
        for i, went in tests:
            r = b.binary("and", r, hits[i] if went else b.unary("not", hits[i]))
        reached.append(b.reshape(r, (n, 1)))
    reached = b.concatenate(reached, 1)  # n, paths
    weights = np.asarray(attrs["leaf_weights"], np.float64)[[leaf for _, leaf in paths]]
    target = np.asarray(attrs["leaf_targetids"])[[leaf for _, leaf in paths]]
    aggregate = attrs["aggregate_function"]
    if aggregate in (0, 1):  # average, sum: one dot with the weights placed at their targets
        table = np.zeros((len(paths), targets))
        table[np.arange(len(paths)), target] = weights / (len(attrs["tree_roots"]) if aggregate == 0 else 1)
        y = dot(b, b.convert(reached, DType.f64), b.constant(table), ([], []), ([1], [0]), (n, targets))
    else:  # min, max over the reached leaves of each target
        init = np.inf if aggregate == 2 else -np.inf
        table = np.full((len(paths), targets), init)
        table[np.arange(len(paths)), target] = weights
        shape = (n, len(paths), targets)
        values = b.select(b.broadcast_in_dim(reached, shape, [0, 1]), b.broadcast_in_dim(b.constant(table), shape, [1, 2]),
                          b.full(init, TensorType(DType.f64, shape)))
        y = b.reduce(values, b.scalar(init, DType.f64), [1], "minimum" if aggregate == 2 else "maximum")
    if attrs["post_transform"] == 1:  # softmax over targets
        top = b.reduce(y, b.scalar(-np.inf, DType.f64), [1], "maximum")
        e = b.unary("exponential", b.binary("subtract", y, b.broadcast_in_dim(top, y.shape, [0])))
        y = b.binary("divide", e, b.broadcast_in_dim(b.reduce(e, b.scalar(0, DType.f64), [1], "add"), y.shape, [0]))
    elif attrs["post_transform"] == 2:
        y = b.unary("logistic", y)
    return b.convert(y, out[0].dtype)
