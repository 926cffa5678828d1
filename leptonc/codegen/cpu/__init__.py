"""The cpu target: fused kernels as one C source per model (program.py, loops.py, kernels.py), built
with the system C compiler (-O3 -march=native -fopenmp) into a shared library with one entry point
(build.py); dense matmul and conv call OpenBLAS from the scipy-openblas32 wheel. Convolution and
pooling run channels-last (conv.py): the lowering pipeline starts with the `channels-last` pass."""

TARGET_PIPELINE = "channels-last,fuse"
