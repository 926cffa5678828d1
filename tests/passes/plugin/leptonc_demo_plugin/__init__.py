"""A pass plugin as a third party would write it: its import registers one pass, and adds a pattern to the
built-in canonicalize pass."""
from leptonc.passes import register_pass
from leptonc.passes.rewrite import pattern_set


@register_pass("demo-relu-relu", "relu(relu(x)) is relu(x)")
def relu_relu(graph):
    changed = False
    for node in list(graph.nodes):
        inner = node.inputs[0].producer if node.op == "relu" else None
        if inner is not None and inner.op == "relu":
            graph.set_input(node, 0, inner.inputs[0])
            changed = True
    return changed


@pattern_set("canonicalize").pattern("abs")
def abs_of_abs(graph, node):
    """abs(abs(x)) is abs(x)."""
    inner = node.inputs[0].producer
    return node.inputs[0] if inner is not None and inner.op == "abs" else None
