"""Triton body of dft: each result element is the direct sum over the signal in double (the reference's
FFT agrees to double rounding), with each twiddle's angle reduced exactly ((k * m) mod n) before the sine
and cosine. The axis' sizes must be known when compiling."""
from __future__ import annotations

import math

from ...ir.graph import Node
from .texpr import UnsupportedError, tltype


def dft_body(ctx, node: Node, space, body: list[str], offset) -> None:
    """Lines storing dft's result element at each position of `space`; offset(index_of) is the flat offset
    into x of the element whose index along dim a is index_of(a)."""
    x, y = node.inputs[0], node.outputs[0]
    rank = x.type.rank
    axis = node.attrs["axis"] % (rank - 1)
    inverse, onesided = node.attrs["inverse"], node.attrs["onesided"]
    in_n = x.shape[axis]
    if not isinstance(in_n, int):
        raise UnsupportedError(f"{ctx.where}: dft along an axis of run-time size {in_n} is not supported by the "
                               "triton target (the cpu target runs it)")
    n = node.attrs["length"]
    if n <= 0:
        n = 2 * (in_n - 1) if inverse and onesided else in_n
    real_out = inverse and onesided
    terms = min(in_n, n // 2 + 1 if real_out else n)

    def at(m: str, part: int) -> str:
        return offset(lambda a: m if a == axis else str(part) if a == rank - 1 else space.index(a)[0])

    k = space.index(axis)[0]
    step = (1 if inverse else -1) * 2 * math.pi / n
    body += ["re = tl.full([BLOCK], 0.0, tl.float64)", "im = tl.full([BLOCK], 0.0, tl.float64)",
             f"for m in range(0, {terms}):",
             f"    a = tl.load({ctx.ptr(x)} + {at('m', 0)}, mask=mask, other=0).to(tl.float64)",
             (f"    b = tl.load({ctx.ptr(x)} + {at('m', 1)}, mask=mask, other=0).to(tl.float64)"
              if x.shape[-1] == 2 else "    b = 0.0 * a"),
             f"    angle = (({k}).to(tl.int64) * m % {n}).to(tl.float64) * {step!r}",
             "    c = tl.cos(angle)",
             "    s = tl.sin(angle)"]
    if real_out:  # irfft: the bins above n / 2 are the conjugates of those below; imag of 0 and n / 2 unread
        twice = f"tl.where((m == 0) | (m * 2 == {n}), 1.0, 2.0)"
        body.append(f"    re += {twice} * (a * c - tl.where((m == 0) | (m * 2 == {n}), 0.0, b) * s)")
    else:
        body += ["    re += a * c - b * s", "    im += a * s + b * c"]
    value = "re" if real_out else f"tl.where({space.index(rank - 1)[0]} == 0, re, im)"
    if inverse:
        value = f"({value} / {float(n)!r})"
    body.append(space.store(ctx.ptr(y), y.shape, f"({value}).to({tltype(y.dtype, ctx.where)})"))
