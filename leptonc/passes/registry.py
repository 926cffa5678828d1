"""The pass registry: every pass by name, with its description and typed options.

Passes are registered with `@register_pass` (see the package docstring) and
named pipelines (`default`) with `register_pipeline`. Built-in pass modules
in this package are imported on first lookup; plugins through the
entry-point group `leptonc.passes` (plugins.py).
"""
from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import pkgutil
import threading
from dataclasses import dataclass, field
from typing import Callable

from ..ir.errors import LeptoncError
from ..ir.graph import Graph

_OPTION_TYPES = (int, float, bool, str)
_KIND_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


class PassError(LeptoncError):
    """A pass, pipeline or pass option that is wrong, or a pass that broke the graph."""


@dataclass(frozen=True)
class Option:
    """One typed option of a pass: `{"per": Option(str, "tensor", "granularity", choices=("tensor", "channel"))}`."""

    type: type
    default: object
    help: str = ""
    choices: tuple = ()

    def __post_init__(self):
        if self.type not in _OPTION_TYPES:
            raise TypeError(f"option type must be one of int, float, bool, str; got {self.type!r}")

    def describe(self) -> str:
        kind = "|".join(str(c) for c in self.choices) if self.choices else self.type.__name__
        text = f"{kind} (default {format_option_value(self.default)})"
        return f"{text}: {self.help}" if self.help else text

    def parse(self, text, where: str):
        """A value given as text (or already typed) converted to this option's type, or PassError."""
        value = text
        if isinstance(text, str) and self.type is not str:
            try:
                if self.type is bool:
                    value = {"true": True, "1": True, "yes": True, "on": True,
                             "false": False, "0": False, "no": False, "off": False}[text.lower()]
                else:
                    value = self.type(text)
            except (KeyError, ValueError):
                raise PassError(f"{where}: {text!r} is not {_KIND_NAMES[self.type]}") from None
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
            raise PassError(f"{where}: {value!r} is not {_KIND_NAMES[self.type]}")
        if self.choices and value not in self.choices:
            raise PassError(f"{where}: {format_option_value(value)!r} is not one of "
                            f"{', '.join(str(c) for c in self.choices)}")
        return value


def format_option_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class PassResult:
    """What a pass returns: whether it changed the graph, and optionally a new graph replacing it."""

    changed: bool
    graph: Graph | None = None


class Pass:
    """Base class for passes that keep state between graphs or need set-up.

    A subclass implements `run(graph) -> bool | PassResult`; its options (defaults
    filled in) are the dict `self.options`. Most passes are plain functions instead.
    """

    def __init__(self, **options):
        self.options = options

    def run(self, graph: Graph) -> bool | PassResult:
        raise NotImplementedError


@dataclass
class PassInfo:
    """A registered pass (`impl` set) or named pipeline (`pipeline` set)."""

    name: str
    description: str
    options: dict[str, Option] = field(default_factory=dict)
    impl: Callable | type | None = None
    pipeline: str | None = None
    fixpoint: bool = False
    max_iterations: int = 10
    origin: str = "builtin"

    @property
    def is_pipeline(self) -> bool:
        return self.pipeline is not None

    def check_options(self, given: dict, where: str) -> dict:
        """The given options (text or typed) validated and typed; unknown names list the known ones."""
        out = {}
        for key, value in given.items():
            if key not in self.options:
                known = ", ".join(f"{k}={o.describe()}" for k, o in self.options.items())
                msg = f"options: {known}" if known else "it takes no options"
                raise PassError(f"{where}: pass '{self.name}' has no option '{key}' ({msg})")
            out[key] = self.options[key].parse(value, f"{where}: option '{key}' of pass '{self.name}'")
        return out

    def run(self, graph: Graph, options: dict) -> PassResult:
        """Run the pass with the given options (defaults filled in); the result normalized to a PassResult."""
        full = {k: o.default for k, o in self.options.items()}
        full.update(options)
        if inspect.isclass(self.impl):
            result = self.impl(**full).run(graph)
        else:
            result = self.impl(graph, **full)
        if isinstance(result, PassResult):
            return result
        if isinstance(result, bool):
            return PassResult(result)
        raise PassError(f"pass '{self.name}' returned {type(result).__name__}; a pass returns "
                        f"True/False (changed or not) or a PassResult")


_PASSES: dict[str, PassInfo] = {}
_loaded = False
_loading = False
_load_lock = threading.RLock()
_origin = "builtin"
# Modules of this package that hold the machinery, not passes.
_INFRASTRUCTURE = {"registry", "pipeline", "manager", "plugins", "cli_args"}


def register_pass(name: str, description: str, options: dict[str, Option] | None = None) -> Callable:
    """Register the decorated function `fn(graph, **options) -> bool | PassResult` or Pass subclass."""
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(f"pass name {name!r}: use letters, digits, '-', '_' and '.'")
    for key, opt in (options or {}).items():
        if not isinstance(opt, Option):
            raise TypeError(f"pass '{name}': option '{key}' must be an Option")

    def register(impl):
        _add(PassInfo(name, description, dict(options or {}), impl=impl, origin=_origin))
        return impl

    return register


def register_pipeline(name: str, description: str, pipeline: str, *, fixpoint: bool = False,
                      max_iterations: int = 10) -> None:
    """Name a pipeline (e.g. `default`); with fixpoint, it repeats until no pass changes the graph."""
    _add(PassInfo(name, description, pipeline=pipeline, fixpoint=fixpoint, max_iterations=max_iterations,
                  origin=_origin))


def _add(info: PassInfo) -> None:
    if info.name in _PASSES:
        raise ValueError(f"pass '{info.name}' is registered twice ({_PASSES[info.name].origin} and {info.origin})")
    _PASSES[info.name] = info


def get_pass(name: str, where: str = "pipeline") -> PassInfo:
    """The registered pass or pipeline `name`; an unknown name suggests the nearest ones."""
    load_passes()
    try:
        return _PASSES[name]
    except KeyError:
        pass
    near = difflib.get_close_matches(name, list(_PASSES), n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(repr(n) for n in near)}?" if near else \
        f"registered passes: {', '.join(sorted(_PASSES))}"
    from .plugins import plugin_failures
    broken = "".join(f"; {f}" for f in plugin_failures())
    raise PassError(f"{where}: unknown pass '{name}' ({hint}{broken})")


def list_passes() -> list[PassInfo]:
    """Every registered pass and named pipeline, plugins included, sorted by name."""
    load_passes()
    return [_PASSES[k] for k in sorted(_PASSES)]


def load_passes() -> None:
    """Import the built-in pass modules of this package, then the plugins (once).

    A module that fails to import is recorded like a failed plugin (see plugins.py). Other threads wait
    until every module is in; a lookup from a module being imported (the loading thread itself) returns
    at once.
    """
    global _loaded, _loading
    if _loaded:
        return
    with _load_lock:
        if _loaded or _loading:
            return
        _loading = True
        try:
            from . import __path__ as package_path
            from .plugins import load_plugins, record_failure
            for mod in sorted(m.name for m in pkgutil.iter_modules(package_path)):
                if mod not in _INFRASTRUCTURE:
                    try:
                        importlib.import_module(f"{__package__}.{mod}")
                    except Exception as e:  # one broken module must not take every pass down; it is reported
                        record_failure(mod, "built-in", e)
            load_plugins()
        finally:
            _loading, _loaded = False, True


@contextlib.contextmanager
def registering_for(origin: str):
    """Passes registered inside this block are marked as coming from `origin` (a plugin)."""
    global _origin
    saved, _origin = _origin, origin
    try:
        yield
    finally:
        _origin = saved
