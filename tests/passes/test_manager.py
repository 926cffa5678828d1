"""The registry, pipeline strings and the pass manager: options, errors, dumps, verify-each, stats."""
from __future__ import annotations

import io

import numpy as np
import pytest

from leptonc.ir import DType, Graph, TensorType, parse_ir, print_ir
from leptonc.passes import (Option, Pass, PassError, PassManager, PassResult, format_stats, get_pass,
                            list_passes, parse_pipeline, register_pass, register_pipeline, run_pipeline)

SMALL = """graph @g(%x: f32[4]) -> (f32[4]) {
  %one = const @one [1.0] : f32[]
  %a = mul(%x, %one) : f32[4]
  %b = exp(%a) : f32[4]
  %dead = neg(%x) : f32[4]
  return %b
}
"""


# Passes registered for these tests only (names start with "test-").
@register_pass("test-options", "records its options", options={
    "mode": Option(str, "int8", "a choice", choices=("int8", "int4")),
    "count": Option(int, 3), "scale": Option(float, 0.5), "flag": Option(bool, False), "label": Option(str, "")})
def _options_pass(graph, mode, count, scale, flag, label):
    graph.name = f"{mode}-{count}-{scale}-{flag}-{label}"
    return False  # the printed IR changes (the name); only verify_each may notice


@register_pass("test-break", "erases a node that is still used (makes an invalid graph)")
def _break_pass(graph):
    node = next(n for n in graph.nodes if n.op == "exp")
    graph.nodes = [n for n in graph.nodes if n is not node]
    return True


@register_pass("test-crash", "raises an ordinary exception")
def _crash_pass(graph):
    raise ZeroDivisionError("boom")


@register_pass("test-new-graph", "returns a fresh graph computing relu of the input")
class _NewGraph(Pass):
    def run(self, graph):
        g = Graph("fresh")
        x = g.add_input("x", graph.inputs[0].type)
        g.set_outputs([g.add("relu", x)])
        return PassResult(True, g)


@register_pass("test-always", "renames the graph every time (never converges)")
def _always_pass(graph):
    graph.name += "x"
    return True


register_pipeline("test-loop", "a fixpoint that never settles", "test-always", fixpoint=True, max_iterations=3)


@register_pass("test-none", "forgets to say whether it changed the graph")
def _none_pass(graph):
    return None


def test_builtin_passes_are_listed():
    names = {p.name for p in list_passes()}
    assert {"dce", "fold", "cse", "canonicalize", "fold-batchnorm", "default"} <= names
    assert all(p.description for p in list_passes())


@pytest.mark.parametrize("text", [
    "canonicalize,fold,cse,dce",
    "test-options{mode=int4,count=7}",
    "fold{max_elements=10},test-options{flag=true,label=\"a, b {c}\",scale=2.0},dce",
    "default",
])
def test_printed_pipeline_parses_back(text):
    p = parse_pipeline(text)
    assert parse_pipeline(str(p)) == p
    assert str(parse_pipeline(str(p))) == str(p)


def test_options_are_typed():
    entry = parse_pipeline(" test-options { mode = int4 , count=7, scale=2, flag=yes } ").entries[0]
    assert entry.options == {"mode": "int4", "count": 7, "scale": 2.0, "flag": True}
    g = run_pipeline(parse_ir(SMALL), "test-options{count=9,label=\"x y\"}")
    assert g.name == "int8-9-0.5-False-x y"


@pytest.mark.parametrize("text, message", [
    ("canonicalise", r"unknown pass 'canonicalise' \(did you mean 'canonicalize'"),
    ("fold,dcee", r"at column 6: unknown pass 'dcee' \(did you mean 'dce'"),
    ("zzzzzz", r"unknown pass 'zzzzzz' \(registered passes: .*canonicalize"),
    ("test-options{mood=int4}", r"has no option 'mood' \(options: mode=int8\|int4 \(default int8\): a choice, count="),
    ("dce{x=1}", r"pass 'dce' has no option 'x' \(it takes no options\)"),
    ("test-options{mode=int2}", r"'int2' is not one of int8, int4"),
    ("test-options{count=many}", r"'many' is not an integer"),
    ("test-options{flag=maybe}", r"'maybe' is not true or false"),
    ("test-options{count=1,count=2}", r"option 'count' is given twice"),
    ("fold,,dce", r"expected a pass name, got ','"),
    ("fold{max_elements=1", r"expected ',' or '}' after an option, got the end"),
    ("", r"empty pipeline"),
])
def test_pipeline_errors(text, message):
    with pytest.raises(PassError, match=message):
        parse_pipeline(text)


def test_run_pipeline_returns_optimized_copy():
    g = parse_ir(SMALL)
    before = print_ir(g)
    out = run_pipeline(g, "canonicalize,dce")
    assert print_ir(g) == before  # the caller's graph is untouched
    assert [n.op for n in out.nodes] == ["exp"]


def test_stats_per_pass():
    stats = []
    run_pipeline(parse_ir(SMALL), "canonicalize,cse,dce", stats=stats)
    assert [(s.name, s.ops_before, s.ops_after, s.changed) for s in stats] == [
        ("canonicalize", 4, 2, True), ("cse", 2, 2, False), ("dce", 2, 1, True)]
    assert all(s.seconds >= 0 for s in stats)
    table = format_stats(stats)
    assert "canonicalize" in table and "total" in table


def test_default_runs_to_a_fixpoint():
    stats = []
    run_pipeline(parse_ir(SMALL), "default", stats=stats)
    rounds = sorted({s.within for s in stats})
    assert rounds[0] == "default#1" and len(rounds) >= 2
    last = [s for s in stats if s.within == rounds[-1]]
    assert not any(s.changed for s in last)


def test_unconverged_fixpoint_is_reported():
    pm = PassManager("test-loop")
    assert pm.run(parse_ir(SMALL)).name == "gxxx"
    assert pm.unconverged == ["test-loop still changed the graph after 3 rounds"]
    pm = PassManager("default")
    pm.run(parse_ir(SMALL))
    assert pm.unconverged == []


def test_disable_pass_also_inside_named_pipelines():
    stats = []
    run_pipeline(parse_ir(SMALL), "default,dce", stats=stats, disable=["dce"])
    assert "dce" not in {s.name for s in stats}
    with pytest.raises(PassError, match="unknown pass 'cs'"):
        PassManager("dce", disable=["cs"])


def test_print_ir_after():
    out = io.StringIO()
    run_pipeline(parse_ir(SMALL), "canonicalize,dce", print_ir_after=["dce"], out=out)
    text = out.getvalue()
    assert text.count("# IR after") == 1 and "# IR after dce\n" in text
    out = io.StringIO()
    run_pipeline(parse_ir(SMALL), "default", print_ir_after=["default"], out=out)
    assert out.getvalue().count("# IR after") == 1 and "# IR after default\n" in out.getvalue()
    out = io.StringIO()
    run_pipeline(parse_ir(SMALL), "canonicalize,cse", print_ir_after_all=True, out=out)
    assert "# IR after canonicalize\n" in out.getvalue()
    assert "# IR after cse (unchanged)\n" in out.getvalue()


def test_dump_dir(tmp_path):
    run_pipeline(parse_ir(SMALL), "default", dump_dir=str(tmp_path))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[:3] == ["000_input.lir", "001_canonicalize.lir", "002_fold.lir"]
    assert parse_ir((tmp_path / "000_input.lir").read_text()) is not None
    assert "exp" in (tmp_path / names[-1]).read_text()


def test_verify_each_names_the_pass_and_writes_the_ir_before_it(tmp_path):
    with pytest.raises(PassError, match="pass 'test-break' produced an invalid graph") as e:
        run_pipeline(parse_ir(SMALL), "canonicalize,test-break", verify_each=True, report_dir=str(tmp_path))
    path = str(e.value).split("the IR before the pass is in ")[1].split(";")[0]
    saved = open(path).read()
    assert path.startswith(str(tmp_path)) and "exp" in saved
    assert "mul" not in parse_ir(saved).op_counts()  # the IR after canonicalize, before test-break


def test_verify_each_catches_a_pass_that_lies_about_changing(tmp_path):
    with pytest.raises(PassError, match="said it did not change the graph, but the IR differs"):
        run_pipeline(parse_ir(SMALL), "test-options", verify_each=True, report_dir=str(tmp_path))
    run_pipeline(parse_ir(SMALL), "test-options")  # without verify_each nobody checks


def test_a_crashing_pass_is_named(tmp_path):
    with pytest.raises(PassError, match=r"pass 'test-crash' crashed \(ZeroDivisionError: boom\); the IR before"):
        run_pipeline(parse_ir(SMALL), "test-crash", verify_each=True, report_dir=str(tmp_path))
    with pytest.raises(PassError, match=r"crashed \(ZeroDivisionError: boom\); run with verify_each"):
        run_pipeline(parse_ir(SMALL), "test-crash")


def test_a_pass_must_say_whether_it_changed():
    with pytest.raises(PassError, match="'test-none' returned NoneType"):
        run_pipeline(parse_ir(SMALL), "test-none")


def test_a_pass_may_return_a_new_graph():
    out = run_pipeline(parse_ir(SMALL), "test-new-graph,dce", verify_each=True)
    assert out.name == "fresh" and [n.op for n in out.nodes] == ["relu"]


def test_invalid_input_is_not_blamed_on_a_pass():
    g = Graph("bad")
    x = g.add_input("x", TensorType(DType.f32, (4,)))
    y = g.add("exp", x)
    g.nodes = []
    g.set_outputs([y])
    with pytest.raises(PassError, match="input graph fails verification, before any pass"):
        run_pipeline(g, "dce", verify_each=True, inplace=True)


def test_register_pass_rejects_bad_definitions():
    with pytest.raises(ValueError, match="registered twice"):
        register_pass("dce", "again")(lambda g: False)
    with pytest.raises(ValueError, match="pass name"):
        register_pass("has space", "x")
    with pytest.raises(TypeError, match="must be an Option"):
        register_pass("test-bad-option", "x", options={"n": 3})


def test_get_pass_describes_options():
    fold = get_pass("fold")
    assert fold.options["max_elements"].type is int
    assert "default 65536" in fold.options["max_elements"].describe()


def test_dce_keeps_graph_output_constants():
    g = Graph("c")
    c = g.add_constant(np.arange(3, dtype=np.int64), "k")
    g.add_constant(np.arange(3, dtype=np.int64), "unused")
    g.set_outputs([c])
    out = run_pipeline(g, "dce", verify_each=True)
    assert list(out.constants) == ["k"]
