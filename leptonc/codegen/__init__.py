"""Code generation: one subpackage per target (cpu: C source built into a shared library)."""
