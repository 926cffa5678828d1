"""Op counts before and after leptonc's `default` pipeline, beside ONNX Runtime's basic optimizations.

    python -m benchmarks.pass_op_counts                    # BERT-base and ResNet-50
    python -m benchmarks.pass_op_counts --models bert_small,resnet_small

Each model of tests/model_zoo.py is exported with torch.onnx.export's
TorchScript exporter (which writes shape arithmetic out as Shape, Gather,
Unsqueeze, Concat... nodes). Counted for each:

- the ONNX file (exported at static shapes; with symbolic batch and
  sequence sizes; and at static shapes without the exporter's own constant
  folding, which otherwise folds batchnorm into conv weights already): its
  nodes, and its nodes other than Constant;
- ONNX Runtime with ORT_ENABLE_BASIC (constant folding, redundant-node
  elimination, identity/dropout removal, ...), read back from
  SessionOptions.optimized_model_filepath: nodes other than Constant;
- leptonc: the imported graph and the graph after `default`, ops other than
  const (weights are not ops); and the shape computations left after `default`.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter

SHAPE_OPS = ("shape_of", "full_dynamic", "reshape_dynamic", "expand_dynamic", "range_dynamic", "slice_dynamic")


VARIANTS = {  # how each model is exported: symbolic sizes? the exporter's own constant folding?
    "static": (False, True),
    "symbolic": (True, True),
    "unfolded": (False, False),
}


def onnx_counts(path: str) -> tuple[int, int]:
    import onnx

    nodes = onnx.load(path, load_external_data=False).graph.node
    return len(nodes), sum(n.op_type != "Constant" for n in nodes)


def ort_basic_count(path: str, out_path: str) -> int:
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = out_path
    ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return sum(n.op_type != "Constant" for n in onnx.load(out_path, load_external_data=False).graph.node)


def ops(graph) -> int:
    return sum(n.op != "const" for n in graph.nodes)


def measure(name: str, folder: str) -> dict:
    import leptonc
    from leptonc.passes import run_pipeline
    from tests.passes.onnx_export import export_onnx

    row = {"model": name}
    for label, (dynamic, exporter_folding) in VARIANTS.items():
        path = os.path.join(folder, f"{name}.{label}.onnx")
        export_onnx(name, path, dynamic, exporter_folding)
        row[f"{label}_onnx_nodes"], row[f"{label}_onnx_non_constant"] = onnx_counts(path)
        row[f"{label}_ort_basic"] = ort_basic_count(path, os.path.join(folder, f"{name}.{label}.ort_basic.onnx"))
        graph = leptonc.import_onnx(path)
        start = time.perf_counter()
        after = run_pipeline(graph, "default", verify_each=False)
        row[f"{label}_seconds"] = time.perf_counter() - start
        row[f"{label}_before"], row[f"{label}_after"] = ops(graph), ops(after)
        counts = Counter(n.op for n in after.nodes)
        row[f"{label}_shape_ops_left"] = {op: counts[op] for op in SHAPE_OPS if counts[op]}
        row[f"{label}_top_ops"] = counts.most_common(6)
    return row


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="bert,resnet50", help="zoo model names, comma-separated")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models.split(","):
            row = measure(name, folder)
            for label in VARIANTS:
                print(f"{name} ({label}): ONNX {row[f'{label}_onnx_nodes']} nodes "
                      f"({row[f'{label}_onnx_non_constant']} non-Constant); ORT basic {row[f'{label}_ort_basic']}; "
                      f"leptonc {row[f'{label}_before']} -> {row[f'{label}_after']} ops after default "
                      f"({row[f'{label}_seconds']:.2f}s); shape ops left {row[f'{label}_shape_ops_left']}")
                print(f"  most common after default: {row[f'{label}_top_ops']}")


if __name__ == "__main__":
    main()
