"""What each target compiles of the op registry: the ops it lacks, and those it compiles in some forms only,
each with the reason a user reads. Every other registered op compiles on the target in every form its
samples exercise (ir/samples.py): tests/test_conformance.py runs them all against the reference interpreter
and fails when this file says more or less than the truth. `leptonc ops` prints it as a matrix.

A target refuses what it lacks with a one-line error naming the node, never a wrong answer.
"""
from __future__ import annotations

TARGETS = ("cpu", "triton", "stablehlo")

_DATA_SIZED = "its result size depends on the data, and the target plans every buffer before run time"
_STATIC_LACKS = "the target runs it as its static twin once its sizes are known (a program per value), and " \
    "lacks that op"
_NO_KERNEL = "no kernel for it yet (the stablehlo target runs it)"
_CPU_ONLY = "no kernel for it yet (the cpu target runs it)"

# op -> why the target compiles none of its forms
LACKS: dict[str, dict[str, str]] = {
    "cpu": {
        **dict.fromkeys(("nonzero", "unique", "non_max_suppression"), _DATA_SIZED),
        "mel_weight_matrix": _NO_KERNEL,
    },
    "triton": {
        **dict.fromkeys(("nonzero", "unique", "non_max_suppression"), _DATA_SIZED),
        "col2im_dynamic": _STATIC_LACKS,
        **dict.fromkeys(("col2im", "conv_transpose", "deform_conv",
                         "dequantize", "det", "einsum",
                         "conv_bsr", "matmul_csr", "matmul_integer", "matmul_nm", "matmul_w8a8", "matmul_wq",
                         "max_pool_with_indices", "max_unpool", "mel_weight_matrix", "quantize",
                         "reverse_sequence", "roi_align", "scatter_elements", "scatter_nd",
                         "tensor_scatter", "tfidf_vectorizer", "tree_ensemble"), _NO_KERNEL),
        **dict.fromkeys(("matmul_bsr", "qlinear_conv", "qlinear_matmul"), _CPU_ONLY),
    },
    "stablehlo": {
        **dict.fromkeys(("nonzero", "unique", "non_max_suppression"),
                        "its result size depends on the data, and XLA needs static shapes"),
        **dict.fromkeys(("conv_bsr", "qlinear_conv", "qlinear_matmul"), _CPU_ONLY),
    },
}

# op -> the forms the target refuses (it compiles the others)
PARTLY: dict[str, dict[str, str]] = {
    "cpu": {
        "conv": "over 3 spatial dims (1 or 2 run)",
        "matmul_integer": "other than [..., M, K] times a 2-d b with a per-tensor zero point",
        "matmul_wq": "weights with a zero point (symmetric weights run)",
        "quantize": "to i4 (i8 and u8 run)",
        "reduce_max": "over bool",
    },
    "triton": {
        "cast": "to the 2- and 4-bit integers, dtypes the target lacks (the cpu target runs them)",
        "conv": "over 3 spatial dims (1 or 2 run)",
        "matmul": "over integers (floating-point types run)",
        "pow": "of an integer by an integer",
    },
    "stablehlo": {},
}


def support(op: str, target: str) -> tuple[str, str]:
    """("yes", ""), ("partly", the forms refused) or ("no", why) for op on target."""
    if op in LACKS[target]:
        return "no", LACKS[target][op]
    if op in PARTLY[target]:
        return "partly", PARTLY[target][op]
    return "yes", ""


def support_matrix(ops) -> str:
    """The op x target table, then each gap with its reason."""
    marks = {"yes": "yes", "partly": "part", "no": "-"}
    width = max(len(op) for op in ops)
    lines = [f"{'op':<{width}}  " + "  ".join(f"{t:<9}" for t in TARGETS)]
    notes = []
    for op in ops:
        row = []
        for t in TARGETS:
            kind, why = support(op, t)
            row.append(f"{marks[kind]:<9}")
            if why:
                notes.append(f"  {op} on {t}: {'not ' if kind == 'partly' else ''}{why}")
        lines.append(f"{op:<{width}}  " + "  ".join(row).rstrip())
    counts = ", ".join(f"{t} {sum(support(op, t)[0] == 'yes' for op in ops)}/{len(ops)}" for t in TARGETS)
    return "\n".join(lines + ["", f"every form: {counts}", "gaps:"] + notes)
