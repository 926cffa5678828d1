"""Control flow, inlined: If with a condition known while importing takes its branch (otherwise both
branches run and `where` picks each output, which needs outputs of one type and shape); Scan and
Loop are unrolled when their trip counts are known while importing."""
from __future__ import annotations

import numpy as np

from ....ir import dims as D
from ....ir.errors import UnsupportedOpError
from ..importer import MAX_UNROLL
from ..registry import onnx_op
from .common import norm_axis, unsupported


@onnx_op("If")
def if_(cx):
    b, cond = cx.b, cx.x(0)
    known = b.known(cond)
    if known is not None:
        branch = cx.a("then_branch") if bool(known.reshape(-1)[0]) else cx.a("else_branch")
        return b.import_subgraph(branch, [])
    then = b.import_subgraph(cx.a("then_branch"), [])
    other = b.import_subgraph(cx.a("else_branch"), [])
    c = b.reshape(cond, ()) if cond.type.rank else cond
    outs = []
    for t, e in zip(then, other):
        if t.dtype is not e.dtype or t.type.rank != e.type.rank or \
                not all(D.same(i, j) for i, j in zip(t.shape, e.shape)):
            unsupported(cx, f"a run-time condition with branches whose outputs differ in type or shape "
                            f"({t.type} and {e.type})")
        outs.append(b.op("where", c, t, e))
    return outs


def _step(b, v, t: int, axis: int):
    return b.op("gather", v, b.const(np.array(t, np.int64)), axis=axis)


def _stack(b, values, axis: int):
    rank = values[0].type.rank + 1
    axis = norm_axis(axis, rank)
    parts = [b.op("unsqueeze", v, axes=(axis,)) if D.UNKNOWN in v.shape else
             b.reshape(v, tuple(v.shape[:axis]) + (1,) + tuple(v.shape[axis:])) for v in values]
    return parts[0] if len(parts) == 1 else b.op("concat", *parts, axis=axis)


@onnx_op("Scan")
def scan(cx):
    b = cx.b
    body = cx.a("body")
    m = cx.a("num_scan_inputs")
    inputs = [x for x in cx.inputs]
    if cx.version < 9:
        unsupported(cx, "Scan before opset 9 (with sequence_lens)")
    n_state = len(inputs) - m
    states, xs = inputs[:n_state], inputs[n_state:]
    in_axes = list(cx.a("scan_input_axes") or [0] * m)
    in_dirs = list(cx.a("scan_input_directions") or [0] * m)
    n_out = len(body.output) - n_state
    out_axes = list(cx.a("scan_output_axes") or [0] * n_out)
    out_dirs = list(cx.a("scan_output_directions") or [0] * n_out)
    in_axes = [norm_axis(a, x.type.rank) for a, x in zip(in_axes, xs)]
    lengths = {x.shape[a] for x, a in zip(xs, in_axes)}
    if len(lengths) != 1 or not isinstance(next(iter(lengths)), int):
        unsupported(cx, f"scan lengths {sorted(map(str, lengths))} must be one size known while importing")
    steps = next(iter(lengths))
    if steps > MAX_UNROLL:
        unsupported(cx, f"{steps} steps (unrolled up to {MAX_UNROLL})")
    per_step = [[] for _ in range(n_out)]
    for t in range(steps):
        slices = [_step(b, x, steps - 1 - t if d else t, a) for x, a, d in zip(xs, in_axes, in_dirs)]
        outs = b.import_subgraph(body, states + slices)
        states = outs[:n_state]
        for k in range(n_out):
            per_step[k].append(outs[n_state + k])
    results = list(states)
    for k in range(n_out):
        vals = per_step[k][::-1] if out_dirs[k] else per_step[k]
        if not vals:
            unsupported(cx, "a scan of zero steps")
        results.append(_stack(b, vals, out_axes[k]))
    return results


@onnx_op("Loop")
def loop(cx):
    b = cx.b
    body = cx.a("body")
    trip, cond = cx.x(0), cx.x(1)
    carried = list(cx.inputs[2:])
    n = None if trip is None else b.ints(trip)
    if trip is not None and n is None:
        unsupported(cx, "a trip count that is not known while importing")
    limit = MAX_UNROLL if n is None else n[0]
    keep_going = True if cond is None else b.known(cond)
    if keep_going is None:
        unsupported(cx, "a loop condition that is not known while importing")
    keep_going = bool(np.asarray(keep_going).reshape(-1)[0])
    n_carried = len(carried)
    scans: list[list] = [[] for _ in range(len(body.output) - 1 - n_carried)]
    i = 0
    while keep_going and i < limit:
        it = b.const(np.array(i, np.int64))
        c = b.const(np.array(True))
        outs = b.import_subgraph(body, [it, c] + carried)
        nxt = b.known(outs[0])
        if nxt is None:
            unsupported(cx, "a loop condition that is not known while importing")
        keep_going = bool(np.asarray(nxt).reshape(-1)[0])
        carried = outs[1:1 + n_carried]
        for k, v in enumerate(outs[1 + n_carried:]):
            scans[k].append(v)
        i += 1
    if keep_going and n is None:
        raise UnsupportedOpError(f"Loop: still running after {MAX_UNROLL} unrolled iterations")
    results = list(carried)
    for vals in scans:
        if not vals:
            unsupported(cx, "a loop of zero iterations with scan outputs")
        results.append(_stack(b, vals, 0))
    return results
