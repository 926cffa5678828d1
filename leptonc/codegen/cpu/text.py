"""The C body of tfidf_vectorizer: n-gram counts of integer token rows, as ONNX TfIdfVectorizer.

The pool's n-grams of each length are known when compiling: they are emitted as sorted tables (tokens,
then the result column of each), and every n-gram of a row (each start, each gap of up to max_skip_count
tokens, unigrams counted once) is looked up by binary search. One task per row; counts accumulate in the
f32 result (exact below 2^24), and IDF and TFIDF weigh them in double, as the reference does.
"""
from __future__ import annotations

from ...ir.dtypes import DType
from ...ir.graph import Node
from ...ir.ops.text import _grams
from .cexpr import ctype, literal
from .kernels import KernelContext


def _table(name: str, values) -> str:
    return f"static const int64_t {name}[] = {{{', '.join(str(int(v)) for v in values) or '0'}}};"


def emit_tfidf_vectorizer(ctx: KernelContext, node: Node) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    a = node.attrs
    low, high = a["min_gram_length"], a["max_gram_length"]
    by_length: dict[int, list] = {n: [] for n in range(1, high + 1)}
    for gram, gid in _grams(a["pool"], a["ngram_counts"], low, high).items():
        if 1 <= len(gram) <= high:
            by_length[len(gram)].append((gram, a["ngram_indexes"][gid - 1]))
    lines = []
    for n, grams in by_length.items():
        grams.sort()
        lines += [_table(f"gram{n}", [t for g, _ in grams for t in g]), _table(f"col{n}", [c for _, c in grams])]
    lines += [f"const int64_t* const GRAM[] = {{NULL, {', '.join(f'gram{n}' for n in by_length)}}};",
              f"const int64_t* const COL[] = {{NULL, {', '.join(f'col{n}' for n in by_length)}}};",
              f"const int64_t COUNT[] = {{0, {', '.join(str(len(g)) for g in by_length.values())}}};"]
    weights = a["weights"]
    if weights:
        lines.append("static const double W[] = {" + ", ".join(literal(w, DType.f64) for w in weights) + "};")
    rows = ctx.d(x.shape[0]) if x.type.rank == 2 else "1"
    t = ctype(x.dtype, ctx.where)
    lines += [f"const int64_t ROWS = {rows}, T = {ctx.d(x.shape[-1])}, S = {ctx.d(y.shape[-1])};",
              "#pragma omp parallel for schedule(static) if (ROWS * T > 4096)",
              "for (int64_t r = 0; r < ROWS; ++r) {",
              f"  const {t}* row = {ctx.ptr(x)} + r * T;",
              f"  float* out = {ctx.ptr(y)} + r * S;",
              "  for (int64_t c = 0; c < S; ++c) out[c] = 0.0f;",
              f"  int64_t first = {low};",
              f"  for (int64_t skip = 1; skip <= {a['max_skip_count'] + 1}; ++skip) {{",
              "    for (int64_t start = 0; start < T; ++start) {",
              f"      for (int64_t n = first > 1 ? first : 1; n <= {high}; ++n) {{",
              "        if (start + (n - 1) * skip >= T) break;",
              "        int64_t lo = 0, hi = COUNT[n];",
              "        while (lo < hi) {   /* the first gram not below the row's n-gram */",
              "          const int64_t mid = (lo + hi) / 2;",
              "          int below = 0;",
              "          for (int64_t i = 0; i < n; ++i) {",
              "            const int64_t g = GRAM[n][mid * n + i], v = (int64_t)row[start + i * skip];",
              "            if (g != v) { below = g < v; break; }",
              "          }",
              "          if (below) lo = mid + 1; else hi = mid;",
              "        }",
              "        int hit = lo < COUNT[n];",
              "        for (int64_t i = 0; hit && i < n; ++i)",
              "          hit = GRAM[n][lo * n + i] == (int64_t)row[start + i * skip];",
              "        if (hit) out[COL[n][lo]] += 1.0f;",
              "      }",
              "    }",
              "    if (first == 1) {",
              "      first = 2;",
              f"      if (first > {high}) break;",
              "    }",
              "  }"]
    if a["mode"] == "IDF":
        weight = "W[c]" if weights else "1.0"
        lines.append(f"  for (int64_t c = 0; c < S; ++c) out[c] = out[c] > 0 ? (float)({weight}) : 0.0f;")
    elif a["mode"] == "TFIDF" and weights:
        lines.append("  for (int64_t c = 0; c < S; ++c) out[c] = (float)((double)out[c] * W[c]);")
    return lines + ["}"]


TEXT_EMITTERS = {"tfidf_vectorizer": emit_tfidf_vectorizer}
