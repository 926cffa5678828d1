"""tree_ensemble on the cpu target against the reference interpreter: random forests of every split mode
(set membership included), missing values that go either way, every aggregate function and post
transform; trees that point outside their tables or back into themselves are errors when compiling."""
from __future__ import annotations

import numpy as np
import pytest

import leptonc
from leptonc.ir import DType, Graph, TensorType


def _forest(rng, trees: int, features: int, targets: int) -> dict:
    """`trees` random trees of depth up to 4, laid out as TreeEnsemble's tables."""
    a = {k: [] for k in ("nodes_splits", "nodes_featureids", "nodes_modes", "nodes_truenodeids",
                         "nodes_falsenodeids", "nodes_trueleafs", "nodes_falseleafs", "missing_tracks_true")}
    leaves, roots, members = [], [], []

    def grow(depth: int) -> tuple[int, bool]:
        """(id, is a leaf) of a new subtree."""
        if depth == 4 or (depth > 0 and rng.random() < 0.3):
            leaves.append((int(rng.integers(0, targets)), round(float(rng.normal()), 3)))
            return len(leaves) - 1, True
        i = len(a["nodes_modes"])
        mode = int(rng.integers(0, 7))
        for k, v in (("nodes_splits", float(rng.integers(-2, 3))), ("nodes_featureids", int(rng.integers(0, features))),
                     ("nodes_modes", mode), ("missing_tracks_true", int(rng.integers(0, 2)))):
            a[k].append(v)
        for k in ("nodes_truenodeids", "nodes_falsenodeids", "nodes_trueleafs", "nodes_falseleafs"):
            a[k].append(0)
        if mode == 6:
            members.extend(rng.integers(-2, 3, int(rng.integers(1, 4))).astype(float).tolist() + [np.nan])
        for side in ("true", "false"):
            child, leaf = grow(depth + 1)
            a[f"nodes_{side}nodeids"][i], a[f"nodes_{side}leafs"][i] = child, int(leaf)
        return i, False

    for _ in range(trees):
        root, leaf = grow(0)
        roots.append(root)
    return {**{k: tuple(v) for k, v in a.items()}, "leaf_targetids": tuple(t for t, _ in leaves),
            "leaf_weights": tuple(w for _, w in leaves), "tree_roots": tuple(roots), "n_targets": targets,
            "membership_values": tuple(members)}


def _graph(features: int, **attrs) -> Graph:
    g = Graph("forest")
    x = g.add_input("x", TensorType(DType.f32, ("n", features)))
    g.set_outputs([g.add("tree_ensemble", x, **attrs)])
    return g


@pytest.mark.parametrize("aggregate", [0, 1, 2, 3])
@pytest.mark.parametrize("post", [0, 1, 2])
def test_tree_ensemble_matches_the_reference(aggregate, post):
    rng = np.random.default_rng(aggregate * 3 + post)
    g = _graph(3, **_forest(rng, trees=5, features=3, targets=3), aggregate_function=aggregate,
               post_transform=post)
    x = rng.integers(-3, 4, (40, 3)).astype(np.float32)   # integers: every equality and membership test meets hits
    x[rng.random(x.shape) < 0.1] = np.nan
    got, want = leptonc.compile(g, quiet=True).run(x)[0], leptonc.run_reference(g, x)[0]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("change, message", [
    ({"nodes_truenodeids": (1, 0), "nodes_trueleafs": (0, 0)}, "comes back to node 0"),
    ({"nodes_falsenodeids": (5, 0)}, "goes to leaf 5, which does not exist"),
    ({"nodes_featureids": (7, 0)}, "reads feature 7 of 2"),
])
def test_a_malformed_tree_is_an_error(change, message):
    tree = {"nodes_splits": (0.0, 1.0), "nodes_featureids": (0, 1), "nodes_modes": (0, 0),
            "nodes_truenodeids": (1, 0), "nodes_falsenodeids": (0, 1), "nodes_trueleafs": (0, 1),
            "nodes_falseleafs": (1, 1), "leaf_targetids": (0, 0), "leaf_weights": (1.0, 2.0), "tree_roots": (0,),
            "n_targets": 1}
    with pytest.raises(leptonc.LeptoncError, match=message):
        leptonc.compile(_graph(2, **{**tree, **change}), quiet=True)
