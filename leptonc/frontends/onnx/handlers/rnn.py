"""RNN, GRU and LSTM, unrolled over the (import-time known) sequence length into matmuls and
elementwise ops. Sequence lengths per batch entry hold the state and zero the output past each
entry's end."""
from __future__ import annotations

import numpy as np

from ....ir.dtypes import DType
from ..registry import onnx_op
from .common import unsupported
from .control import _stack

_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
_DEFAULT_ACTS = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}


def _activation(cx, name: str, alpha, beta):
    b = cx.b

    def s(v, like):
        return b.scalar(v, like.dtype)

    name = name.lower()

    def f(x):
        if name == "tanh":
            return b.op("tanh", x)
        if name == "sigmoid":
            return b.op("sigmoid", x)
        if name == "relu":
            return b.op("relu", x)
        if name == "affine":
            return b.op("add", b.op("mul", x, s(alpha, x)), s(beta, x))
        if name == "leakyrelu":
            return b.op("where", b.op("less", x, s(0, x)), b.op("mul", x, s(alpha, x)), x)
        if name == "thresholdedrelu":
            return b.op("where", b.op("greater", x, s(alpha, x)), x, s(0, x))
        if name == "scaledtanh":
            return b.op("mul", b.op("tanh", b.op("mul", x, s(beta, x))), s(alpha, x))
        if name == "hardsigmoid":
            y = b.op("add", b.op("mul", x, s(alpha, x)), s(beta, x))
            return b.op("min", b.op("max", y, s(0, x)), s(1, x))
        if name == "elu":
            return b.op("where", b.op("less", x, s(0, x)),
                        b.op("mul", b.op("sub", b.op("exp", x), s(1, x)), s(alpha, x)), x)
        if name == "softsign":
            return b.op("div", x, b.op("add", b.op("abs", x), s(1, x)))
        if name == "softplus":
            return b.op("log", b.op("add", b.op("exp", x), s(1, x)))
        unsupported(cx, f"activation {name!r}")

    return f


_ALPHA_DEFAULTS = {"affine": (1.0, 0.0), "leakyrelu": (0.01, None), "thresholdedrelu": (1.0, None),
                   "scaledtanh": (1.0, 1.0), "hardsigmoid": (0.2, 0.5), "elu": (1.0, None)}


def _activations(cx, n_dirs: int):
    names = list(cx.a("activations") or _DEFAULT_ACTS[cx.op_type] * n_dirs)
    if len(names) == len(_DEFAULT_ACTS[cx.op_type]) and n_dirs == 2:
        names = names * 2
    alphas = list(cx.a("activation_alpha") or ())
    betas = list(cx.a("activation_beta") or ())
    out, ai, bi = [], 0, 0
    for name in names:
        da, db = _ALPHA_DEFAULTS.get(name.lower(), (None, None))
        alpha = beta = None
        if da is not None:
            alpha = alphas[ai] if ai < len(alphas) else da
            ai += 1
        if db is not None:
            beta = betas[bi] if bi < len(betas) else db
            bi += 1
        out.append(_activation(cx, name, alpha, beta))
    per = len(_DEFAULT_ACTS[cx.op_type])
    return [out[d * per:(d + 1) * per] for d in range(n_dirs)]


def _split_gates(b, v, n: int, hidden: int, axis: int):
    return b.ops("split", [v], axis=axis, sizes=(hidden,) * n) if n > 1 else [v]


@onnx_op("RNN", "GRU", "LSTM")
def recurrent(cx):
    b = cx.b
    x, w, r = cx.x(0), cx.x(1), cx.x(2)
    bias, lens, h0 = cx.x(3), cx.x(4), cx.x(5)
    c0 = cx.x(6) if cx.op_type == "LSTM" else None
    peep = cx.x(7) if cx.op_type == "LSTM" else None
    layout = cx.a("layout", 0)
    hidden = cx.a("hidden_size") or w.shape[1] // _GATES[cx.op_type]
    direction = cx.a("direction", "forward")
    n_dirs = 2 if direction == "bidirectional" else 1
    clip = cx.a("clip")
    g = _GATES[cx.op_type]
    if layout:
        x = b.op("transpose", x, perm=(1, 0, 2))
        h0 = None if h0 is None else b.op("transpose", h0, perm=(1, 0, 2))
        c0 = None if c0 is None else b.op("transpose", c0, perm=(1, 0, 2))
    seq, batch = x.shape[0], x.shape[1]
    if not isinstance(seq, int):
        unsupported(cx, f"sequence length {seq}, not known before run time")
    dt = x.dtype
    acts = _activations(cx, n_dirs)
    lens = None if lens is None else b.cast(lens, DType.i64)
    known_lens = b.ints(lens) if lens is not None else None
    if known_lens is not None and all(v == seq for v in known_lens):
        lens = None

    def pick(v, d):
        return None if v is None else b.op("gather", v, b.const(np.array(d, np.int64)), axis=0)

    ys, hs, cs = [], [], []
    for d in range(n_dirs):
        reverse = direction == "reverse" or d == 1
        f_acts = acts[d]
        wd = b.op("transpose", pick(w, d), perm=(1, 0))  # input, g*hidden
        rd = b.op("transpose", pick(r, d), perm=(1, 0))  # hidden, g*hidden
        r_parts = _split_gates(b, rd, g, hidden, 1)
        if bias is not None:
            wb, rb = b.ops("split", [pick(bias, d)], axis=0, sizes=(g * hidden, g * hidden))
        else:
            wb = rb = b.scalar(0, dt, (g * hidden,))
        rb_parts = _split_gates(b, rb, g, hidden, 0)
        h = pick(h0, d) if h0 is not None else b.scalar(0, dt, (batch, hidden)) if isinstance(batch, int) else None
        if h is None:
            unsupported(cx, "an unknown batch size without an initial state")
        c = (pick(c0, d) if c0 is not None else b.scalar(0, dt, (batch, hidden))) if cx.op_type == "LSTM" else None
        p = _split_gates(b, pick(peep, d), 3, hidden, 0) if peep is not None else None
        xs = x
        if reverse and lens is not None:
            xs = b.op("reverse_sequence", x, lens, batch_axis=1, time_axis=0)
        outs = []
        for step in range(seq):
            t = seq - 1 - step if reverse and lens is None else step
            xt = b.op("gather", xs, b.const(np.array(t, np.int64)), axis=0)
            xw = b.op("add", b.op("matmul", xt, wd), wb)
            x_parts = _split_gates(b, xw, g, hidden, 1)

            def gate(k, extra=None, clip_it=True):
                v = b.op("add", x_parts[k], b.op("add", b.op("matmul", h, r_parts[k]), rb_parts[k]))
                if extra is not None:
                    v = b.op("add", v, extra)
                if clip is not None and clip_it:
                    v = b.op("min", b.op("max", v, b.scalar(-clip, dt)), b.scalar(clip, dt))
                return v

            def clipped(v):
                if clip is None:
                    return v
                return b.op("min", b.op("max", v, b.scalar(-clip, dt)), b.scalar(clip, dt))

            if cx.op_type == "RNN":
                h_new, c_new = f_acts[0](gate(0)), None
            elif cx.op_type == "GRU":
                z = f_acts[0](gate(0))
                rr = f_acts[0](gate(1))
                if cx.a("linear_before_reset", 0):
                    hr = b.op("add", b.op("matmul", h, r_parts[2]), rb_parts[2])
                    pre = clipped(b.op("add", x_parts[2], b.op("mul", rr, hr)))
                else:
                    hr = b.op("matmul", b.op("mul", rr, h), r_parts[2])
                    pre = clipped(b.op("add", b.op("add", x_parts[2], hr), rb_parts[2]))
                hh = f_acts[1](pre)
                one = b.scalar(1, dt)
                h_new, c_new = b.op("add", b.op("mul", b.op("sub", one, z), hh), b.op("mul", z, h)), None
            else:
                i = f_acts[0](gate(0, None if p is None else b.op("mul", p[0], c)))
                fg = f_acts[0](gate(2, None if p is None else b.op("mul", p[2], c)))
                if cx.a("input_forget", 0):
                    fg = b.op("sub", b.scalar(1, dt), i)
                cc = f_acts[1](gate(3))
                c_new = b.op("add", b.op("mul", fg, c), b.op("mul", i, cc))
                o = f_acts[0](gate(1, None if p is None else b.op("mul", p[1], c_new)))
                h_new = b.op("mul", o, f_acts[2](c_new))
            if lens is not None:
                live = b.op("less", b.const(np.array(t, np.int64)), lens)
                live = b.reshape(live, (live.shape[0], 1))
                h = b.op("where", live, h_new, h)
                c = b.op("where", live, c_new, c) if c_new is not None else c
                outs.append(b.op("where", live, h_new, b.scalar(0, dt)))
            else:
                h, c = h_new, c_new
                outs.append(h_new)
        if reverse and lens is None:
            outs = outs[::-1]
        y = _stack(b, outs, 0)  # seq, batch, hidden
        if reverse and lens is not None:
            y = b.op("reverse_sequence", y, lens, batch_axis=1, time_axis=0)
        ys.append(b.reshape(y, (seq, 1, batch, hidden)))
        hs.append(b.reshape(h, (1, batch, hidden)))
        if c is not None:
            cs.append(b.reshape(c, (1, batch, hidden)))
    y = ys[0] if n_dirs == 1 else b.op("concat", *ys, axis=1)
    yh = hs[0] if n_dirs == 1 else b.op("concat", *hs, axis=0)
    yc = (cs[0] if n_dirs == 1 else b.op("concat", *cs, axis=0)) if cs else None
    if layout:
        y = b.op("transpose", y, perm=(2, 0, 1, 3))
        yh = b.op("transpose", yh, perm=(1, 0, 2))
        yc = None if yc is None else b.op("transpose", yc, perm=(1, 0, 2))
    return [y, yh] + ([yc] if cx.op_type == "LSTM" else [])
