"""Pass plugins: packages that declare an entry point in the group `leptonc.passes`.

    [project.entry-points."leptonc.passes"]
    my_passes = "my_package.passes"        # a module whose import registers passes

Loading a plugin imports the entry point's target; its `@register_pass`
decorators do the rest. It may also add patterns to a built-in pass:
`@pattern_set("canonicalize").pattern("my_op")` (rewrite.py). A plugin that fails to import is recorded (with
its name and the error) and the other plugins still load; `leptonc passes`
reports the failures, and so does the error for a pass name nobody registered.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

from .registry import registering_for

GROUP = "leptonc.passes"


@dataclass(frozen=True)
class PluginFailure:
    """A module of passes (a plugin's entry point, or a built-in module) that failed to import."""

    name: str
    target: str
    error: str

    def __str__(self) -> str:
        return f"pass module '{self.name}' ({self.target}) failed to load: {self.error}"


_failures: list[PluginFailure] = []


def load_plugins() -> list[PluginFailure]:
    """Import every entry point of the group; return those that failed."""
    for ep in metadata.entry_points(group=GROUP):
        try:
            with registering_for(f"plugin {ep.name}"):
                ep.load()
        except Exception as e:  # any failure inside third-party code is reported, never fatal
            record_failure(ep.name, ep.value, e)
    return list(_failures)


def record_failure(name: str, target: str, error: BaseException) -> None:
    _failures.append(PluginFailure(name, target, f"{type(error).__name__}: {error}"))


def plugin_failures() -> list[PluginFailure]:
    """The plugins (and built-in pass modules) that failed to load so far."""
    return list(_failures)
