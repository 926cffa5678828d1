"""A plugin whose import fails: leptonc reports it by name and loads the others."""
import leptonc_missing_dependency  # noqa: F401
