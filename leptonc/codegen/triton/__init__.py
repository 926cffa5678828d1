"""The triton target: every kernel of the fusion plan (the same plan as the cpu target's) as Triton source.

program.py assembles one Python module of `@triton.jit` kernels and their
launchers (kernels.py for each kind of kernel, image.py and signal.py for the
bodies of the image and signal ops, attention.py for attention
chains as one flash-attention kernel, tiles.py for fused elementwise code and
reductions, texpr.py for the Triton spelling of each op, prelude.py for
helpers and the block-size table) and a JSON launch plan; leptonc/runtime/triton.py
runs the plan on torch tensors: on a CUDA GPU, or on the CPU with TRITON_INTERPRET=1.

fp32 numerics: tl.dot runs with input_precision="ieee" by default, so outputs
meet the project's fp32 tolerance. With allow_tf32 on a GPU, tl.dot uses TF32
tensor cores (10-bit mantissa products); the tolerance declared for that mode
is TF32_TOLERANCE: max|y - ref| <= 1e-2 * max(1, max|ref|).
"""

TARGET_PIPELINE = "fuse"
TF32_TOLERANCE = 1e-2


def compile_triton(graph, pipeline: list[str], progress, *, example_inputs=None, allow_tf32: bool = False):
    """The triton target's lowering of an optimized graph: fusion, Triton source, launch plan, artifact."""
    import triton

    from ...ir.printer import print_ir
    from ...passes import run_pipeline
    from ...runtime import safetensors
    from ...runtime.artifact import Artifact, program_manifest
    from ...runtime.signature import example_bindings
    from .program import generate
    from ...runtime.triton import TritonModel

    graph = run_pipeline(graph, TARGET_PIPELINE)
    progress.stage("generating Triton kernels")
    program = generate(graph)
    weights = {name: graph.constants[name] for name in program.meta["weights"]}
    manifest = program_manifest("triton", f"triton {triton.__version__}", ",".join(pipeline + [TARGET_PIPELINE]),
                                program.meta, program.plan.report(), example_bindings(graph.inputs, example_inputs))
    art = Artifact(manifest, print_ir(graph), safetensors.dumps(weights), program.source, b"")
    return TritonModel(art, allow_tf32=allow_tf32)
