"""Single ops of the cpu target against ONNX Runtime (resize, topk, grid_sample, conv_transpose), and einsum
lowered to a matmul against the einsum kernel, as ratios timed in turns.

    python benchmarks/op_kernels.py [--threads 1] [--runs 15]

Each ONNX Runtime row is one ONNX node (its sizes, scales, k and weights as initializers), imported and
compiled by leptonc and run by ONNX Runtime: conv_transpose on a decoder's upsampling layers (2-d, stride 2)
and a 1-d audio upsampler. The einsum rows compare the cpu pipeline with and without lower-einsum, on
attention scores and a projection. Every row checks the outputs against each other first. Timings are
medians over calls taken in turns, so that the load of a shared machine falls on both alike; the ratios are
the figures to read.
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

IMAGE = (1, 64, 80, 80)
CONV_TRANSPOSE = [((1, 64, 32, 32), (64, 32, 4, 4), (2, 2), (1, 1, 1, 1), (0, 0)),
                  ((4, 128, 16, 16), (128, 64, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
                  ((1, 32, 256), (32, 16, 8), (4,), (2, 2), (0,))]
EINSUM = [("bhqd,bhkd->bhqk", (1, 12, 128, 64), (1, 12, 128, 64)), ("bsd,df->bsf", (1, 128, 256), (256, 256))]


def _cases():
    """(name, ONNX node, input shapes, initializers, opset)."""
    from onnx import helper

    up = np.array([1, 1, 2, 2], np.float32)
    for mode, coords in (("nearest", "asymmetric"), ("linear", "half_pixel"), ("cubic", "half_pixel")):
        node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode=mode, coordinate_transformation_mode=coords,
                                nearest_mode="floor")
        yield f"resize {mode} 2x {list(IMAGE)}", node, {"x": IMAGE}, {"scales": up}, 19
    for rows, n, k in ((64, 32000, 5), (64, 32000, 50), (16, 32000, 32000)):
        node = helper.make_node("TopK", ["x", "k"], ["values", "indices"])
        yield f"topk k={k} of {rows}x{n}", node, {"x": (rows, n)}, {"k": np.array([k], np.int64)}, 19
    for mode in ("linear", "cubic"):
        node = helper.make_node("GridSample", ["x", "grid"], ["y"], mode=mode)
        yield f"grid_sample {mode} [1, 32, 64, 64]", node, {"x": (1, 32, 64, 64), "grid": (1, 64, 64, 2)}, {}, 20
    rng = np.random.default_rng(2)
    for x_shape, w_shape, strides, pads, extra in CONV_TRANSPOSE:
        node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], kernel_shape=list(w_shape[2:]),
                                strides=list(strides), pads=list(pads), output_padding=list(extra))
        w = (rng.standard_normal(w_shape) * 0.1).astype(np.float32)
        yield f"conv_transpose {list(x_shape)} by {list(w_shape)}, strides {list(strides)}", node, {"x": x_shape}, \
            {"w": w}, 17


def _model(path: str, node, shapes: dict, initializers: dict, opset: int) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in shapes.items()]
    outputs = [helper.make_tensor_value_info(n, TensorProto.INT64 if n == "indices" else TensorProto.FLOAT, None)
               for n in node.output]
    graph = helper.make_graph([node], "bench", inputs, outputs,
                              [numpy_helper.from_array(a, n) for n, a in initializers.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), path)


def rows(threads: int, runs: int) -> list[str]:
    out = ["| op | leptonc ms | ORT ms | leptonc / ORT |", "|---|---|---|---|"]
    rng = np.random.default_rng(0)
    for name, node, shapes, initializers, opset in _cases():
        xs = {n: rng.uniform(-1.1, 1.1, s).astype(np.float32) for n, s in shapes.items()}
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "op.onnx")
            _model(path, node, shapes, initializers, opset)
            cm = leptonc.compile(leptonc.import_onnx(path), quiet=True, cache=False)
            sess = ort_session(path, threads)
            ours, theirs = (lambda a: cm.run(*a.values())), (lambda a: sess.run(None, a))
            for got, want in zip(ours(xs), theirs(xs)):
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
            t_ours, t_ort = median_seconds_in_turns([ours, theirs], xs, runs)
        out.append(f"| {name} | {t_ours * 1e3:.2f} | {t_ort * 1e3:.2f} | {t_ours / t_ort:.2f}x |")
    return out


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
    print("\n".join(rows(args.threads, args.runs) + [""] + einsum_rows(args.runs)))


if __name__ == "__main__":
    main()
