"""Running what the compiler made: the artifact format and its trust model, the executors of every target
(compiled.py and executor.py for cpu, triton.py, xla.py), the reference interpreter and input binding.

The runtime imports only the IR (tests/test_layering.py): loading an artifact, which derives its program again
with the code generator, lives above it in leptonc/loader.py."""
