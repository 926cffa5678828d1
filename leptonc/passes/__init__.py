"""Optimization passes over the graph IR: the registry, pipelines, the pass manager, and the passes.

Running passes
--------------
    from leptonc.passes import run_pipeline
    g = run_pipeline(g, "canonicalize,fold,cse,dce")          # returns the optimized graph (a copy)
    g = run_pipeline(g, "default", verify_each=True, dump_dir="dumps", stats=stats_list)

Instruments run around every pass (instruments.py): verification, dumps,
printing, timing, and `check_reference_each=inputs`, which stops at the first
pass whose outputs on those inputs move beyond its declared tolerance.

A pipeline is a string of pass names separated by commas; options go in
braces: "quantize{weights=int8,per=channel}". Named pipelines expand to
passes; `default` runs the cleanup passes until nothing changes.
`list_passes()` lists every registered pass (`leptonc passes` prints them).

Writing a pass
--------------
A pass is a function over a Graph that edits it in place, through the Graph
helpers (add/insert, replace_all_uses, set_input, erase), and returns True if
it changed the graph, False if it did not:

    from leptonc.passes import Option, register_pass

    @register_pass("drop-relu6", "replace min(relu(x), 6) by relu(x) (lossy)",
                   options={"limit": Option(float, 6.0, "the clamp to drop")})
    def drop_relu6(graph, limit):
        changed = False
        ...
        return changed

Options are typed (int, float, bool, str, optionally with choices) and come
from the pipeline string: "drop-relu6{limit=6.0}". A pass may instead return
PassResult(changed, graph=new_graph) to hand back a different Graph, or be a
subclass of Pass with a run(graph) method (options in self.options).

The contract the manager checks under verify_each: the result verifies, and
a pass that returns False left the printed IR exactly as it was. Passes that
preserve values exactly are tested differentially against the reference
interpreter on random graphs.

Third-party passes register through the entry-point group `leptonc.passes`
(see plugins.py and README "Writing a pass plugin").
"""
from .instruments import Instrument, ReferenceCheck, ReferenceMismatch
from .manager import PassManager, PassStat, format_stats, run_pipeline
from .pipeline import Pipeline, PipelineEntry, parse_pipeline
from .plugins import plugin_failures
from .registry import (Option, Pass, PassError, PassInfo, PassResult, get_pass, list_passes, register_pass,
                       register_pipeline)

__all__ = ["Instrument", "Option", "Pass", "PassError", "PassInfo", "PassManager", "PassResult", "PassStat",
           "Pipeline", "PipelineEntry", "ReferenceCheck", "ReferenceMismatch", "format_stats", "get_pass", "list_passes",
           "parse_pipeline", "plugin_failures", "register_pass", "register_pipeline", "run_pipeline"]
