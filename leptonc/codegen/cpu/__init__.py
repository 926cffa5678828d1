"""The cpu target: fused kernels as one C source per model, built with the system C compiler
(-O3 -march=native -fopenmp) into a shared library with one entry point; dense matmul and conv
call OpenBLAS (scipy-openblas32)."""
from .build import BuildError, build_library, cpu_features
from .cexpr import UnsupportedError
from .program import CpuProgram, generate

TARGET_PIPELINE = "fuse"

__all__ = ["BuildError", "CpuProgram", "TARGET_PIPELINE", "UnsupportedError", "build_library", "cpu_features",
           "generate"]
