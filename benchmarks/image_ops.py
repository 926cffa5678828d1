"""resize, topk and grid_sample on the cpu target against ONNX Runtime, as ratios timed in turns.

    python benchmarks/image_ops.py [--threads 1] [--runs 15]

Each row is one ONNX node (its sizes, scales and k as initializers), imported and compiled by leptonc and
run by ONNX Runtime; the outputs are checked against each other first. Timings are medians over calls
taken in turns, so that the load of a shared machine falls on both alike; the ratios are the figures to read.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import leptonc  # noqa: E402
from leptonc.bench import median_seconds_in_turns, ort_session  # noqa: E402

IMAGE = (1, 64, 80, 80)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    os.environ["LEPTONC_NUM_THREADS"] = str(args.threads)
    print(f"threads {args.threads}, median of {args.runs} calls in turns\n")
    print("\n".join(rows(args.threads, args.runs)))


if __name__ == "__main__":
    main()
