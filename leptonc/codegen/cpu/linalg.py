"""C bodies of einsum and det.

- einsum, any equation (diagonals, broadcast ellipses, many operands): one loop over the result's elements
  (OpenMP threads share them), and inside, one over every combination of the summed letters, each operand
  addressed by the sum of its letters' strides (a letter repeated in one term adds its strides: the
  diagonal; a size-1 dim that broadcasts has stride 0). Floats accumulate in double, integers in 64 bits
  (wrapping to the result type as numpy's einsum does). Einsums without diagonals or broadcasts arrive
  as matmuls and sums instead (the lower-einsum pass).
- det: Gaussian elimination with partial pivoting in double, one matrix per task: the product of the
  pivots, negated once per row swap (LAPACK's getrf, which the reference's numpy.linalg.det calls, pivots
  the same way).
"""
from __future__ import annotations

from ...ir import dims as D
from ...ir.dtypes import DType
from ...ir.graph import Node
from ...ir.ops.linalg import einsum_terms
from .cexpr import UnsupportedError, cnumel, ctype
from .kernels import KernelContext


def _array(name: str, items: list[str]) -> str:
    return f"const int64_t {name}[] = {{{', '.join(items) or '0'}}};"


def emit_einsum(ctx: KernelContext, node: Node) -> list[str]:
    xs, y = node.inputs, node.outputs[0]
    if y.dtype is DType.bool:
        raise UnsupportedError(f"{ctx.where}: einsum over bool is not supported by the cpu target")
    terms, result = einsum_terms(node.attrs["equation"], [x.type.rank for x in xs])
    size: dict[str, object] = {}
    for x, term in zip(xs, terms):
        for c, d in zip(term, x.shape):
            if c not in size or D.same(size[c], 1):
                size[c] = d
    summed = [c for c in dict.fromkeys("".join(terms)) if c not in result]
    letters = list(result) + summed   # the result's letters, then the summed ones
    acc = "double" if y.dtype.is_float else "uint64_t"   # (unsigned: integer products wrap, as numpy's)
    lines = [_array("size", [ctx.d(size[c]) for c in letters]),
             f"const int NOUT = {len(result)}, NALL = {len(letters)};",
             "int64_t total = 1; for (int i = NOUT; i < NALL; ++i) total *= size[i];"]
    for j, (x, term) in enumerate(zip(xs, terms)):
        strides = D.contiguous_strides(x.shape)
        per_letter = []
        for c in letters:   # a dim of size 1 under a letter of another size broadcasts: stride 0
            parts = [ctx.d(s) for s, cc, d in zip(strides, term, x.shape) if cc == c
                     and not (D.same(d, 1) and not D.same(size[c], 1))]
            per_letter.append(" + ".join(parts) or "0")
        lines.append(_array(f"st{j}", per_letter))
    product = " * ".join(f"({acc}){ctx.ptr(x)}[o{j}]" for j, x in enumerate(xs))
    offsets = ", ".join(f"o{j} = 0" for j in range(len(xs)))
    lines += [f"#pragma omp parallel for schedule(static) if ({cnumel(y.shape, ctx.where)} * total > 32768)",
              f"for (int64_t out = 0; out < {cnumel(y.shape, ctx.where)}; ++out) {{",
              "  int64_t idx[NALL > 0 ? NALL : 1];",
              "  { int64_t r = out; for (int i = NOUT - 1; i >= 0; --i) { idx[i] = r % size[i]; r /= size[i]; } }",
              f"  {acc} sum = 0;",
              "  for (int64_t s = 0; s < total; ++s) {",
              "    int64_t r = s;",
              "    for (int i = NALL - 1; i >= NOUT; --i) { idx[i] = r % size[i]; r /= size[i]; }",
              f"    int64_t {offsets};",
              "    for (int i = 0; i < NALL; ++i) {"]
    lines += [f"      o{j} += idx[i] * st{j}[i];" for j in range(len(xs))]
    lines += ["    }",
              f"    sum += {product};",
              "  }",
              f"  {ctx.ptr(y)}[out] = ({ctype(y.dtype, ctx.where)})sum;",
              "}"]
    return lines


def emit_det(ctx: KernelContext, node: Node) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    n = ctx.d(x.shape[-1])
    return [f"const int64_t NM = {cnumel(x.shape[:-2], ctx.where)}, M = {n};",
            "#pragma omp parallel for schedule(static) if (NM * M * M * M > 65536)",
            "for (int64_t b = 0; b < NM; ++b) {",
            "  double* a = (double*)lep_scratch((size_t)(M * M) * sizeof(double));",
            f"  for (int64_t i = 0; i < M * M; ++i) a[i] = (double){ctx.ptr(x)}[b * M * M + i];",
            "  double det = 1.0;",
            "  for (int64_t k = 0; k < M && det != 0.0; ++k) {",
            "    int64_t p = k;",
            "    for (int64_t i = k + 1; i < M; ++i) if (fabs(a[i * M + k]) > fabs(a[p * M + k])) p = i;",
            "    if (a[p * M + k] == 0.0) { det = 0.0; break; }",
            "    if (p != k) {",
            "      for (int64_t j = 0; j < M; ++j) { double t = a[k * M + j]; a[k * M + j] = a[p * M + j]; "
            "a[p * M + j] = t; }",
            "      det = -det;",
            "    }",
            "    det *= a[k * M + k];",
            "    for (int64_t i = k + 1; i < M; ++i) {",
            "      const double f = a[i * M + k] / a[k * M + k];",
            "      for (int64_t j = k + 1; j < M; ++j) a[i * M + j] -= f * a[k * M + j];",
            "    }",
            "  }",
            f"  {ctx.ptr(y)}[b] = ({ctype(y.dtype, ctx.where)})det;",
            "  free(a);",
            "}"]


LINALG_EMITTERS = {"einsum": emit_einsum, "det": emit_det}
