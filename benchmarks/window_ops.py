"""conv_transpose and einsum on the cpu target, as ratios timed in turns.

    python benchmarks/window_ops.py [--threads 1] [--runs 15]

  conv_transpose  leptonc (a GEMM per batch entry and group, then each output plane adds its taps) against
                  ONNX Runtime's ConvTranspose, on a decoder's upsampling layers (2-d, stride 2) and a 1-d
                  audio upsampler.
  einsum          a two-operand einsum lowered to a matmul (the cpu pipeline's lower-einsum) against the
                  einsum kernel (the pipeline without lower-einsum), on attention scores and a projection.

Each row checks the outputs against each other first. Timings are medians over calls taken in turns, so
that the load of a shared machine falls on every system alike; the ratios are the figures to read.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import leptonc  # noqa: E402
import leptonc.codegen.cpu as cpu  # noqa: E402
from leptonc.bench import median_seconds_in_turns, ort_session  # noqa: E402
from leptonc.ir import DType, Graph, TensorType  # noqa: E402

CONV_TRANSPOSE = [((1, 64, 32, 32), (64, 32, 4, 4), (2, 2), (1, 1, 1, 1), (0, 0)),
                  ((4, 128, 16, 16), (128, 64, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
                  ((1, 32, 256), (32, 16, 8), (4,), (2, 2), (0,))]
EINSUM = [("bhqd,bhkd->bhqk", (1, 12, 128, 64), (1, 12, 128, 64)), ("bsd,df->bsf", (1, 128, 256), (256, 256))]


def _onnx_conv_transpose(path: str, x_shape, w: np.ndarray, strides, pads, output_padding) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], kernel_shape=list(w.shape[2:]), strides=list(strides),
                            pads=list(pads), output_padding=list(output_padding))
    graph = helper.make_graph([node], "ct", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def conv_transpose_rows(threads: int, runs: int) -> list[str]:
    rows = ["| x | w | strides | leptonc ms | ORT ms | leptonc / ORT |", "|---|---|---|---|---|---|"]
    rng = np.random.default_rng(0)
    for x_shape, w_shape, strides, pads, extra in CONV_TRANSPOSE:
        x = rng.standard_normal(x_shape).astype(np.float32)
        w = (rng.standard_normal(w_shape) * 0.1).astype(np.float32)
        g = Graph("conv_transpose")
        v = g.add_input("x", TensorType(DType.f32, x_shape))
        g.set_outputs([g.add("conv_transpose", v, g.add_constant(w, "w"), strides=strides, pads=pads,
                             output_padding=extra)])
        cm = leptonc.compile(g, quiet=True, cache=False)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "ct.onnx")
            _onnx_conv_transpose(path, x_shape, w, strides, pads, extra)
            sess = ort_session(path, threads)
            ours, theirs = (lambda a: cm.run(a)[0]), (lambda a: sess.run(None, {"x": a})[0])
            np.testing.assert_allclose(ours(x), theirs(x), rtol=1e-3, atol=1e-3)
            t_ours, t_ort = median_seconds_in_turns([ours, theirs], x, runs)
        rows.append(f"| {list(x_shape)} | {list(w_shape)} | {list(strides)} | {t_ours * 1e3:.2f} | "
                    f"{t_ort * 1e3:.2f} | {t_ours / t_ort:.2f}x |")
    return rows


def einsum_rows(runs: int) -> list[str]:
    rows = ["| equation | operands | lowered ms | kernel ms | kernel / lowered |", "|---|---|---|---|---|"]
    rng = np.random.default_rng(1)
    for equation, sa, sb in EINSUM:
        g = Graph("einsum")
        a, b = (g.add_input(n, TensorType(DType.f32, s)) for n, s in (("a", sa), ("b", sb)))
        g.set_outputs([g.add("einsum", a, b, equation=equation)])
        lowered = leptonc.compile(g, quiet=True, cache=False)
        pipeline = cpu.TARGET_PIPELINE
        cpu.TARGET_PIPELINE = pipeline.replace("lower-einsum,", "")
        try:
            kernel = leptonc.compile(g, quiet=True, cache=False)
        finally:
            cpu.TARGET_PIPELINE = pipeline
        xs = (rng.standard_normal(sa).astype(np.float32), rng.standard_normal(sb).astype(np.float32))
        np.testing.assert_allclose(lowered.run(*xs)[0], kernel.run(*xs)[0], rtol=1e-4, atol=1e-3)
        t_low, t_kernel = median_seconds_in_turns([lambda p: lowered.run(*p), lambda p: kernel.run(*p)], xs, runs)
        rows.append(f"| `{equation}` | {list(sa)}, {list(sb)} | {t_low * 1e3:.2f} | {t_kernel * 1e3:.2f} | "
                    f"{t_kernel / t_low:.0f}x |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    os.environ["LEPTONC_NUM_THREADS"] = str(args.threads)
    print(f"threads {args.threads}, median of {args.runs} calls in turns\n")
    print("\n".join(conv_transpose_rows(args.threads, args.runs) + [""] + einsum_rows(args.runs)))


if __name__ == "__main__":
    main()
