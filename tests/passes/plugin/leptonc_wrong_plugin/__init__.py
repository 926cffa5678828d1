"""A pass plugin with a bug a third party could write: it claims relu(relu(x)) is x (it drops both relus, not
one), which verifies but changes the numbers wherever x < 0. tests/test_bisect.py finds it."""
from leptonc.passes import register_pass


@register_pass("wrong-relu-relu", "relu(relu(x)) is relu(x) (wrongly drops both)")
def drop_both(graph):
    changed = False
    for node in list(graph.nodes):
        inner = node.inputs[0].producer if node.op == "relu" else None
        if inner is not None and inner.op == "relu":
            graph.replace_all_uses(node.output, inner.inputs[0])
            changed = True
    return changed
