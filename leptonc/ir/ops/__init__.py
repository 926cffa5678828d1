"""Every op of the IR, defined once (see registry.define_op).

Importing this package imports each module in it, which registers its ops;
a new family of ops is a new module here, and nothing else needs editing.
"""
import importlib
import pkgutil

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _mod != "infer":
        importlib.import_module(f"{__name__}.{_mod}")
