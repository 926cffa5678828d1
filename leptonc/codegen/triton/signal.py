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

    loads = [f"tl.load({ctx.ptr(x)} + {at('m', 0)}, mask=mask, other=0).to(tl.float64)",
             f"tl.load({ctx.ptr(x)} + {at('m', 1)}, mask=mask, other=0).to(tl.float64)" if x.shape[-1] == 2 else ""]
    _twiddle_loop(body, terms, space.index(axis)[0], n, inverse, *loads)
    if real_out:  # irfft: the bins above n / 2 are the conjugates of those below; imag of 0 and n / 2 unread
        twice = f"tl.where((m == 0) | (m * 2 == {n}), 1.0, 2.0)"
        body.append(f"    re += {twice} * (a * c - tl.where((m == 0) | (m * 2 == {n}), 0.0, b) * s)")
    else:
        body += ["    re += a * c - b * s", "    im += a * s + b * c"]
    value = "re" if real_out else f"tl.where({space.index(rank - 1)[0]} == 0, re, im)"
    if inverse:
        value = f"({value} / {float(n)!r})"
    body.append(space.store(ctx.ptr(y), y.shape, f"({value}).to({tltype(y.dtype, ctx.where)})"))


def _twiddle_loop(body: list[str], terms: int, k: str, n: int, inverse: bool, real: str, imag: str) -> None:
    """Opens the loop over the signal's positions m < terms: a + ib (the signal at m, from `real` and `imag`,
    '' for 0) and the twiddle c + is of bin k, exp(-+2 pi i k m / n), with k * m reduced mod n exactly."""
    step = (1 if inverse else -1) * 2 * math.pi / n
    body += ["re = tl.full([BLOCK], 0.0, tl.float64)", "im = tl.full([BLOCK], 0.0, tl.float64)",
             f"for m in range(0, {terms}):",
             f"    a = {real}",
             f"    b = {imag}" if imag else "    b = 0.0 * a",
             f"    angle = (({k}).to(tl.int64) * m % {n}).to(tl.float64) * {step!r}",
             "    c = tl.cos(angle)",
             "    s = tl.sin(angle)"]


def stft_body(ctx, node: Node, space, body: list[str]) -> None:
    """Lines storing stft's element (batch, frame, bin, part): the dft of the frame times the window."""
    x, y = node.inputs[0], node.outputs[0]
    window = node.inputs[1] if len(node.inputs) > 1 else None
    length = node.attrs["length"]
    if length <= 0:
        length = window.shape[0]
    if not isinstance(length, int):
        raise UnsupportedError(f"{ctx.where}: stft over frames of run-time length {length} is not supported by the "
                               "triton target (the cpu target runs it)")
    b, f, k, part = (space.index(a)[0] for a in range(4))
    parts = x.shape[-1]
    at = f"{ctx.ptr(x)} + ({b} * {ctx.d(x.shape[1])} + {f} * {node.attrs['step']} + m) * {parts}"
    w = f" * tl.load({ctx.ptr(window)} + m + 0 * {b}, mask=mask, other=0).to(tl.float64)" if window else ""
    _twiddle_loop(body, length, k, length, False, f"tl.load({at}, mask=mask, other=0).to(tl.float64){w}",
                  f"tl.load({at} + 1, mask=mask, other=0).to(tl.float64){w}" if parts == 2 else "")
    body += ["    re += a * c - b * s", "    im += a * s + b * c"]
    body.append(space.store(ctx.ptr(y), y.shape, f"tl.where({part} == 0, re, im).to({tltype(y.dtype, ctx.where)})"))
