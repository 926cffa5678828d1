"""The C body of tree_ensemble (ONNX ai.onnx.ml TreeEnsemble): the trees as constant tables, one task per
sample, each tree walked from its root to a leaf; leaf weights aggregate (average, sum, min or max) per
target in double, then the post transform (softmax or logistic) as the reference applies it.

The trees are checked when compiling: every node, leaf, feature and target id in range, and no walk that
comes back to a node (the reference would never finish it)."""
from __future__ import annotations

from ...ir.dtypes import DType
from ...ir.errors import LeptoncError
from ...ir.graph import Node
from .cexpr import ctype, literal
from .kernels import KernelContext


def _table(kind: str, name: str, values) -> str:
    spelled = [literal(v, DType.f64) if kind == "double" else str(int(v)) for v in values]
    return f"static const {kind} {name}[] = {{{', '.join(spelled) or '0'}}};"


def _check_trees(a: dict, features, where: str) -> None:
    nodes, leaves = len(a["nodes_modes"]), len(a["leaf_weights"])

    def bad(what: str):
        return LeptoncError(f"{where}: tree_ensemble {what}")

    for i in range(nodes):
        for side in ("true", "false"):
            target, is_leaf = a[f"nodes_{side}nodeids"][i], a[f"nodes_{side}leafs"][i]
            if not 0 <= target < (leaves if is_leaf else nodes):
                raise bad(f"node {i}'s {side} branch goes to {'leaf' if is_leaf else 'node'} {target}, "
                          f"which does not exist")
        if isinstance(features, int) and not 0 <= a["nodes_featureids"][i] < features:
            raise bad(f"node {i} reads feature {a['nodes_featureids'][i]} of {features}")
    if any(not 0 <= t < a["n_targets"] for t in a["leaf_targetids"]):
        raise bad(f"has a leaf target outside 0..{a['n_targets'] - 1}")
    for root in a["tree_roots"]:
        if not 0 <= root < nodes:
            raise bad(f"root {root} does not exist")
        stack, on_path = [(root, 0)], set()
        while stack:   # depth first, with the nodes of the current path: a walk back into one is a cycle
            node, side = stack.pop()
            if side == 2:
                on_path.discard(node)
                continue
            if side == 0:
                if node in on_path:
                    raise bad(f"tree at root {root} comes back to node {node}")
                on_path.add(node)
            stack.append((node, side + 1))
            name = ("true", "false")[side]
            if not a[f"nodes_{name}leafs"][node]:
                stack.append((a[f"nodes_{name}nodeids"][node], 0))


def emit_tree_ensemble(ctx: KernelContext, node: Node) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    a = node.attrs
    _check_trees(a, x.shape[1], ctx.where)
    modes = a["nodes_modes"]
    member_at, member_len, members = [], [], []
    for run in _member_sets(modes, a["membership_values"]):
        member_at.append(len(members))
        member_len.append(len(run))
        members += run
    missing = a["missing_tracks_true"] or (0,) * len(modes)
    agg, post = a["aggregate_function"], a["post_transform"]
    start = {0: "0.0", 1: "0.0", 2: "INFINITY", 3: "-INFINITY"}[agg]
    combine = {0: f"acc[t] += w / {len(a['tree_roots'])}.0;", 1: "acc[t] += w;",   # min and max keep a NaN
               2: "acc[t] = w < acc[t] || w != w ? w : acc[t];", 3: "acc[t] = w > acc[t] || w != w ? w : acc[t];"}
    lines = [_table("double", "SPLIT", a["nodes_splits"]), _table("int64_t", "FEAT", a["nodes_featureids"]),
             _table("int64_t", "MODE", modes), _table("int64_t", "TNODE", a["nodes_truenodeids"]),
             _table("int64_t", "FNODE", a["nodes_falsenodeids"]), _table("int64_t", "TLEAF", a["nodes_trueleafs"]),
             _table("int64_t", "FLEAF", a["nodes_falseleafs"]), _table("int64_t", "MISSING", missing),
             _table("int64_t", "MAT", member_at), _table("int64_t", "MLEN", member_len),
             _table("double", "MEMBERS", members), _table("int64_t", "ROOT", a["tree_roots"]),
             _table("int64_t", "TARGET", a["leaf_targetids"]), _table("double", "WEIGHT", a["leaf_weights"]),
             f"const int64_t NS = {ctx.d(x.shape[0])}, NF = {ctx.d(x.shape[1])}, T = {a['n_targets']}, "
             f"TREES = {len(a['tree_roots'])};",
             "#pragma omp parallel for schedule(static) if (NS * TREES > 256)",
             "for (int64_t s = 0; s < NS; ++s) {",
             f"  const {ctype(x.dtype, ctx.where)}* row = {ctx.ptr(x)} + s * NF;",
             "  double acc[T > 0 ? T : 1];",
             f"  for (int64_t t = 0; t < T; ++t) acc[t] = {start};",
             "  for (int64_t tree = 0; tree < TREES; ++tree) {",
             "    int64_t nd = ROOT[tree], leaf;",
             "    if (TLEAF[nd] && FLEAF[nd] && TNODE[nd] == FNODE[nd]) {",
             "      leaf = TNODE[nd];",
             "    } else {",
             "      for (;;) {",
             "        const double v = (double)row[FEAT[nd]], sp = SPLIT[nd];",
             "        int hit;",
             "        switch (MODE[nd]) {",
             "          case 0: hit = v <= sp; break;",
             "          case 1: hit = v < sp; break;",
             "          case 2: hit = v >= sp; break;",
             "          case 3: hit = v > sp; break;",
             "          case 4: hit = v == sp; break;",
             "          case 5: hit = v != sp; break;",
             "          default:",
             "            hit = 0;",
             "            for (int64_t m = 0; m < MLEN[nd]; ++m) hit |= v == MEMBERS[MAT[nd] + m];",
             "        }",
             "        hit |= MISSING[nd] && v != v;",
             "        const int64_t next = hit ? TNODE[nd] : FNODE[nd];",
             "        if (hit ? TLEAF[nd] : FLEAF[nd]) { leaf = next; break; }",
             "        nd = next;",
             "      }",
             "    }",
             "    const int64_t t = TARGET[leaf];",
             "    const double w = WEIGHT[leaf];",
             f"    {combine[agg]}",
             "  }"]
    if post == 1:
        lines += ["  double top = -INFINITY, sum = 0.0;",
                  "  for (int64_t t = 0; t < T; ++t) top = acc[t] > top || acc[t] != acc[t] ? acc[t] : top;",
                  "  for (int64_t t = 0; t < T; ++t) { acc[t] = exp(acc[t] - top); sum += acc[t]; }",
                  "  for (int64_t t = 0; t < T; ++t) acc[t] /= sum;"]
    elif post == 2:
        lines.append("  for (int64_t t = 0; t < T; ++t) acc[t] = 1.0 / (1.0 + exp(-acc[t]));")
    t = ctype(y.dtype, ctx.where)
    return lines + [f"  for (int64_t t = 0; t < T; ++t) {ctx.ptr(y)}[s * T + t] = ({t})acc[t];", "}"]


def _member_sets(modes, values) -> list[list[float]]:
    """Each node's set of values (empty but for mode 6, member): the next NaN-separated run of `values`."""
    sets, it = [], iter(values)
    for m in modes:
        run = []
        if m == 6:
            for v in it:
                if v != v:
                    break
                run.append(v)
        sets.append(run)
    return sets


ML_EMITTERS = {"tree_ensemble": emit_tree_ensemble}
