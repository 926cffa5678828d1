"""Classic-ML ops: tree_ensemble (ONNX ai.onnx.ml TreeEnsemble, opset 5)."""
from __future__ import annotations

import numpy as np

from ..registry import PURE, define_op
from ..samples import op_samples
from ..types import TensorType
from .infer import require, require_float

_MODES = ("leq", "lt", "gte", "gt", "eq", "neq", "member")


def _te_infer(x: TensorType, **a) -> TensorType:
    require_float(x, "tree_ensemble input")
    require(x.rank == 2, "tree_ensemble input must be (samples, features)")
    n = len(a["nodes_modes"])
    for key in ("nodes_splits", "nodes_featureids", "nodes_truenodeids", "nodes_falsenodeids", "nodes_trueleafs",
                "nodes_falseleafs"):
        require(len(a[key]) == n, f"tree_ensemble {key} needs one entry per node")
    require(len(a["leaf_targetids"]) == len(a["leaf_weights"]), "tree_ensemble leaves need a target and weight each")
    require(a["aggregate_function"] in range(4) and a["post_transform"] in (0, 1, 2),
            "tree_ensemble: unknown aggregate function or post transform")
    return x.with_shape((x.shape[0], a["n_targets"]))


@define_op("tree_ensemble", infer=_te_infer, traits=PURE,
           attrs={"nodes_splits": "floats", "nodes_featureids": "ints", "nodes_modes": "ints",
                  "nodes_truenodeids": "ints", "nodes_falsenodeids": "ints", "nodes_trueleafs": "ints",
                  "nodes_falseleafs": "ints", "leaf_targetids": "ints", "leaf_weights": "floats",
                  "tree_roots": "ints", "n_targets": "int", "aggregate_function": ("int", 1),
                  "post_transform": ("int", 0), "missing_tracks_true": ("ints", ()),
                  "membership_values": ("floats", ())})
def tree_ensemble(x, nodes_splits, nodes_featureids, nodes_modes, nodes_truenodeids, nodes_falsenodeids,
                  nodes_trueleafs, nodes_falseleafs, leaf_targetids, leaf_weights, tree_roots, n_targets,
                  aggregate_function, post_transform, missing_tracks_true, membership_values):
    """Sum / average / min / max over trees of the leaf each sample reaches (modes: 0 <=, 1 <, 2 >=,
    3 >, 4 ==, 5 !=, 6 member of a set; NaN-separated sets in membership_values), per target."""
    splits = np.asarray(nodes_splits, np.float64)
    feat, modes = np.asarray(nodes_featureids), np.asarray(nodes_modes)
    tnode, fnode = np.asarray(nodes_truenodeids), np.asarray(nodes_falsenodeids)
    tleaf, fleaf = np.asarray(nodes_trueleafs, bool), np.asarray(nodes_falseleafs, bool)
    missing = np.asarray(missing_tracks_true or (0,) * len(modes), bool)
    members, it = {}, iter(membership_values)
    for i in np.flatnonzero(modes == 6):
        s = []
        for v in it:
            if np.isnan(v):
                break
            s.append(v)
        members[i] = np.asarray(s)
    data = x.astype(np.float64)
    n = data.shape[0]
    rows = np.arange(n)
    out = np.zeros((n, n_targets)) if aggregate_function in (0, 1) else \
        np.full((n, n_targets), np.inf if aggregate_function == 2 else -np.inf)
    for root in tree_roots:
        node = np.full(n, root)
        if tleaf[root] and fleaf[root] and tnode[root] == fnode[root]:
            leaf, done = np.full(n, tnode[root]), np.ones(n, bool)
        else:
            leaf, done = np.zeros(n, np.int64), np.zeros(n, bool)
        while not done.all():
            act = ~done
            nd = node[act]
            v = data[rows[act], feat[nd]]
            s, m = splits[nd], modes[nd]
            hit = np.select([m == 0, m == 1, m == 2, m == 3, m == 4, m == 5],
                            [v <= s, v < s, v >= s, v > s, v == s, v != s], False)
            for i in np.unique(nd[m == 6]):
                sel = nd == i
                hit[sel] = np.isin(v[sel], members[i])
            hit |= missing[nd] & np.isnan(v)
            nxt = np.where(hit, tnode[nd], fnode[nd])
            to_leaf = np.where(hit, tleaf[nd], fleaf[nd])
            idx = np.flatnonzero(act)
            leaf[idx[to_leaf]] = nxt[to_leaf]
            done[idx[to_leaf]] = True
            node[idx[~to_leaf]] = nxt[~to_leaf]
        w = np.asarray(leaf_weights)[leaf]
        t = np.asarray(leaf_targetids)[leaf]
        if aggregate_function in (0, 1):
            np.add.at(out, (rows, t), w / (len(tree_roots) if aggregate_function == 0 else 1))
        else:
            (np.minimum if aggregate_function == 2 else np.maximum).at(out, (rows, t), w)
    if post_transform == 1:
        e = np.exp(out - out.max(axis=1, keepdims=True))
        out = e / e.sum(axis=1, keepdims=True)
    elif post_transform == 2:
        out = 1 / (1 + np.exp(-out))
    return out.astype(x.dtype)


# one tree over 2 features: x0 <= 1 (a missing x0 goes true), then x1 in {2, 3} or x1 > 0
_TREES = {"nodes_splits": (1.0, 0.0, 0.0), "nodes_featureids": (0, 1, 1), "nodes_modes": (0, 6, 3),
          "nodes_truenodeids": (1, 0, 2), "nodes_falsenodeids": (2, 1, 3), "nodes_trueleafs": (0, 1, 1),
          "nodes_falseleafs": (0, 1, 1), "leaf_targetids": (0, 1, 0, 1, 1), "leaf_weights": (1.0, 2.0, 3.0, 4.0, 5.0),
          "tree_roots": (0,), "n_targets": 2, "missing_tracks_true": (1, 0, 0), "membership_values": (2.0, 3.0)}

@op_samples
def _samples(s):
    return {
        "tree_ensemble": [
            s(np.array([[0.5, 2.0], [1.5, -1.0], [np.nan, 0.0], [3.0, 3.0]], np.float32), **_TREES),
            s(s.f32(5, 2), **_TREES, aggregate_function=3, post_transform=1),
            s(s.f32(5, 2), **_TREES, aggregate_function=0, post_transform=2),
        ],
    }
