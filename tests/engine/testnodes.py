"""Nodes used only by the engine tests: they count their calls, fail, or wait on demand."""
from __future__ import annotations

import threading

from nodegraph import ANY, FLOAT, INT, STRING, Boolean, Input, Int, ModelFile, Output, String, node

CALLS: dict[str, int] = {}
GATE = threading.Event()  # SlowCount waits on it between steps when told to


def count(name: str) -> None:
    CALLS[name] = CALLS.get(name, 0) + 1


@node(category="test")
class Source:
    """An integer constant that counts its runs."""
    inputs = [Int("value", 1), String("tag", "")]
    outputs = [Output("INT", INT)]

    def run(self, ctx, value, tag):
        count(f"Source:{tag}")
        return value


@node(category="test")
class AddOne:
    inputs = [Input("x", INT), String("tag", "")]
    outputs = [Output("INT", INT)]

    def run(self, ctx, x, tag):
        count(f"AddOne:{tag}")
        return x + 1


@node(category="test")
class Boom:
    """Always fails."""
    inputs = [Input("x", INT)]
    outputs = [Output("INT", INT)]

    def run(self, ctx, x):
        raise RuntimeError(f"boom at {x}")


@node(category="test")
class Warns:
    """Passes its input through and reports a warning."""
    inputs = [Input("x", INT)]
    outputs = [Output("INT", INT)]

    def run(self, ctx, x):
        ctx.warn(f"careful with {x}")
        return x


@node(category="test", output_node=True)
class Collect:
    inputs = [Input("value", ANY), String("tag", "")]
    outputs = []

    def run(self, ctx, value, tag):
        count(f"Collect:{tag}")
        ctx.show(values=[value])


@node(category="test")
class Range:
    """Outputs a list: downstream nodes run once per item."""
    inputs = [Int("n", 3, min=0, max=100)]
    outputs = [Output("INT", INT, is_list=True)]

    def run(self, ctx, n):
        return list(range(n))


@node(category="test")
class SumList:
    """Receives the whole list."""
    inputs = [Input("values", INT, is_list=True)]
    outputs = [Output("INT", INT)]

    def run(self, ctx, values):
        return sum(values)


@node(category="test")
class Steps:
    """Reports progress for n steps; waits on GATE between steps if wait is set."""
    inputs = [Input("x", INT), Int("n", 5, min=1, max=1000), Int("wait", 0, min=0, max=1)]
    outputs = [Output("INT", INT)]

    def run(self, ctx, x, n, wait):
        for step in range(1, n + 1):
            if wait:
                GATE.wait(5)
            ctx.progress(step, n)
        count("Steps")
        return x + n


@node(category="test")
class ToText:
    inputs = [Input("x", ANY)]
    outputs = [Output("STRING", STRING)]

    def run(self, ctx, x):
        return str(x)


@node(category="test")
class RemembersLazyAnswer:
    """Picks `a` or `b` lazily and keeps its choice on the instance: run() sees what check_lazy decided
    only when the engine asks and runs the same object."""
    inputs = [Boolean("use_a", True), Input("a", INT, lazy=True), Input("b", INT, lazy=True)]
    outputs = [Output("INT", INT)]

    def check_lazy(self, ctx, use_a, a=None, b=None):
        self.choice = "a" if use_a else "b"
        return [self.choice]

    def run(self, ctx, use_a, a=None, b=None):
        return a if self.choice == "a" else b


def _sum_of(weights) -> float:
    count("WeightsSum:build")
    return float(sum(t.sum() for t in weights.tensors.values()))


@node(category="test")
class WeightsSum:
    """The sum of a weights file's tensors, through the model-file service (ctx.models)."""
    inputs = [ModelFile("weights_name", "things")]
    outputs = [Output("FLOAT", FLOAT)]

    @classmethod
    def fingerprint(cls, env, weights_name):
        return env.models.fingerprint("things", weights_name)

    def run(self, ctx, weights_name):
        return ctx.models.load("things", weights_name, _sum_of)


# --- expansion (nodegraph/expansion.py) -----------------------------------------------------------
@node(category="test")
class AddN:
    """Expands into a chain of n AddOne nodes (or into `inner` nodes of another type, to fail)."""
    inputs = [Input("x", INT), Int("n", 3, min=0, max=100), String("inner", "AddOne")]
    outputs = [Output("INT", INT)]

    def run(self, ctx, x, n, inner):
        from nodegraph import Expansion, link

        count("AddN")
        nodes, previous = {}, x  # the first node gets the computed value itself
        for k in range(n):
            nid = f"{ctx.node_id}.{k}"
            nodes[nid] = {"type": inner, "inputs": {"x": previous, **({"tag": f"step{k}"} if inner == "AddOne" else {})}}
            previous = link(nid, 0)
        return Expansion(nodes, (previous,))


@node(category="test")
class CountTo:
    """A loop by recursion: below `stop`, expands into AddOne -> CountTo again (ComfyUI's while loops
    do the same with GraphBuilder)."""
    inputs = [Input("x", INT), Int("stop", 5, min=0, max=1000)]
    outputs = [Output("INT", INT)]

    def run(self, ctx, x, stop):
        from nodegraph import Expansion, link

        if x >= stop:
            return x
        step, again = f"{ctx.node_id}.add", f"{ctx.node_id}.again"
        return Expansion({step: {"type": "AddOne", "inputs": {"x": x}},
                          again: {"type": "CountTo", "inputs": {"x": link(step, 0), "stop": stop}}},
                         (link(again, 0),))


@node(category="test")
class LazyPick:
    """Expands into RemembersLazyAnswer choosing between two Source nodes: lazy inputs of expanded nodes."""
    inputs = [Boolean("use_a", True)]
    outputs = [Output("INT", INT)]

    def run(self, ctx, use_a):
        from nodegraph import Expansion, link

        p = ctx.node_id
        return Expansion({f"{p}.a": {"type": "Source", "inputs": {"value": 10, "tag": "lazy-a"}},
                          f"{p}.b": {"type": "Source", "inputs": {"value": 20, "tag": "lazy-b"}},
                          f"{p}.pick": {"type": "RemembersLazyAnswer",
                                        "inputs": {"use_a": use_a, "a": link(f"{p}.a", 0), "b": link(f"{p}.b", 0)}},
                          f"{p}.show": {"type": "Collect", "inputs": {"value": link(f"{p}.pick", 0), "tag": "inside"}}},
                         (link(f"{p}.pick", 0),))


@node(category="test")
class SlowInside:
    """Expands into Steps (which waits on GATE when wait=1): interrupt must reach it."""
    inputs = [Input("x", INT)]
    outputs = [Output("INT", INT)]

    def run(self, ctx, x):
        from nodegraph import Expansion, link

        nid = f"{ctx.node_id}.steps"
        return Expansion({nid: {"type": "Steps", "inputs": {"x": x, "n": 50, "wait": 1}}}, (link(nid, 0),))


@node(category="test")
class BlockUnless:
    """Passes x through, or blocks whatever uses it (ComfyUI's ExecutionBlocker)."""
    inputs = [Input("x", INT), Boolean("allow", False), String("message", "")]
    outputs = [Output("INT", INT)]

    def run(self, ctx, x, allow, message):
        from nodegraph import ExecutionBlocker

        return x if allow else ExecutionBlocker(message or None)


@node(category="test")
class Alias:
    """Expands into nothing: its output is a link to the workflow node named by `source`."""
    inputs = [String("source", "1")]
    outputs = [Output("INT", INT)]

    def run(self, ctx, source):
        from nodegraph import Expansion, link

        return Expansion({}, (link(source, 0),))
