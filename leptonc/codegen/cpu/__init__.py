"""The cpu target: fused kernels as one C source per model (program.py, loops.py, kernels.py), built
with the system C compiler (-O3 -march=native -fopenmp) into a shared library with one entry point
(build.py); dense matmul and conv call OpenBLAS from the scipy-openblas32 wheel. Convolution and
pooling run channels-last (conv.py): the lowering pipeline runs the `channels-last` pass. The kernels compute
no f16, bf16 or narrower floats: the pipeline starts with `widen-half`, which computes them in f32 between
casts; `lower-einsum` turns einsums into matmuls and sums."""

TARGET_PIPELINE = "widen-half,lower-einsum,channels-last,fuse"
