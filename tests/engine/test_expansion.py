"""Node expansion (nodegraph/expansion.py): a node answers with a sub-graph that joins the run. The
semantics follow ComfyUI 0.8's execution.py (expanded nodes get their own cache entries, the expanding
node takes the values its result links to, output nodes inside run, errors and interrupts are
reported at the workflow node that expanded) and its graph.DynamicPrompt (parents, display nodes)."""
from __future__ import annotations

import threading

import pytest

from nodegraph.executor import Executor
from nodegraph.node import RunControl

from tests.engine import testnodes
from tests.engine.helpers import L, Recorder, make_env, wf


@pytest.fixture
def env(tmp_path, builtin_registry):
    testnodes.CALLS.clear()
    testnodes.GATE.set()
    return make_env(tmp_path, builtin_registry)


def add_n(n=3, inner="AddOne"):
    return wf(n1={"type": "Source", "inputs": {"value": 5, "tag": "src"}},
              n2={"type": "AddN", "inputs": {"x": L("1"), "n": n, "inner": inner}},
              n3={"type": "Collect", "inputs": {"value": L("2"), "tag": "out"}})


def test_expansion_runs_its_nodes_and_gives_their_value(env):
    rec = Recorder()
    result = Executor(env).run(add_n(3), on_event=rec)
    assert result.status == "success", result.errors
    assert result.outputs["3"] == {"values": [8]}
    assert result.executed == ["1", "2.0", "2.1", "2.2", "2", "3"]  # the parent finishes after its nodes
    executing = [(d["node"], d.get("display_node")) for d in rec.of("executing")]
    assert executing == [("1", "1"), ("2", "2"), ("2.0", "2"), ("2.1", "2"), ("2.2", "2"), ("3", "3"), (None, None)]
    assert [testnodes.CALLS.get(f"AddOne:step{k}") for k in range(3)] == [1, 1, 1]


def test_an_identical_rerun_expands_nothing_and_a_changed_one_only_what_changed(env):
    executor = Executor(env)
    executor.run(add_n(3))
    again = executor.run(add_n(3))
    assert again.executed == [] and again.outputs["3"] == {"values": [8]}
    assert testnodes.CALLS["AddN"] == 1
    longer = executor.run(add_n(4))  # the parent runs again; its first three nodes are the same ones
    assert longer.outputs["3"] == {"values": [9]}
    assert longer.executed == ["2.3", "2", "3"] and "2.2" in longer.cached  # its hit cuts off 2.0 and 2.1


def test_recursive_expansion_is_a_loop(env):
    flow = wf(n1={"type": "Source", "inputs": {"value": 0}},
              n2={"type": "CountTo", "inputs": {"x": L("1"), "stop": 6}},
              n3={"type": "Collect", "inputs": {"value": L("2")}})
    result = Executor(env).run(flow)
    assert result.status == "success", result.errors
    assert result.outputs["3"] == {"values": [6]}
    assert "2.again.again.again.again.again" in result.executed  # six levels deep, the last one returns
    assert testnodes.CALLS["AddOne:"] == 6


def test_lazy_inputs_and_output_nodes_inside_an_expansion(env):
    rec = Recorder()
    flow = wf(n1={"type": "LazyPick", "inputs": {"use_a": False}},
              n2={"type": "Collect", "inputs": {"value": L("1"), "tag": "out"}})
    result = Executor(env).run(flow, on_event=rec)
    assert result.status == "success", result.errors
    assert result.outputs["2"] == {"values": [20]}
    assert result.outputs["1.show"] == {"values": [20]}  # the output node inside ran, keyed by its own id
    assert testnodes.CALLS.get("Source:lazy-b") == 1 and "Source:lazy-a" not in testnodes.CALLS
    inside = [d for d in rec.of("executed") if d["node"] == "1.show"]
    assert inside == [{"node": "1.show", "display_node": "1", "output": {"values": [20]},
                       "prompt_id": result.job_id}]


def test_an_error_inside_names_the_expanded_node_its_parent_and_the_workflow_node(env):
    result = Executor(env).run(add_n(2, inner="Boom"))
    assert result.status == "error"
    [error] = result.errors
    assert (error["node_id"], error["node_type"]) == ("2", "AddN")  # as ComfyUI: the workflow node
    assert (error["expanded_node"], error["expanded_node_type"], error["parent_node"]) == ("2.0", "Boom", "2")
    assert error["exception_message"] == "boom at 5"
    assert set(result.skipped) == {"2.1", "2", "3"}


def test_a_bad_expansion_is_the_expanding_nodes_error(env):
    result = Executor(env).run(add_n(2, inner="NoSuchNode"))
    [error] = result.errors
    assert error["node_id"] == "2" and "expanded_node" not in error
    assert error["exception_message"] == ("the expansion of node 2 (AddN): node 2.0 has the unknown node type "
                                          "'NoSuchNode'")
    assert error["exception_type"] == "nodegraph.expansion.ExpansionError"
    clash = Executor(env).run(wf(n1={"type": "Source", "inputs": {"value": 1}},
                                 n2={"type": "AddN", "inputs": {"x": L("1"), "n": 1}},
                                 **{"n2.0": {"type": "Source", "inputs": {}}},
                                 n3={"type": "Collect", "inputs": {"value": L("2")}}))
    assert "adds node '2.0', but the run has a node with that id already" in clash.errors[0]["exception_message"]


def test_interrupt_reaches_a_node_inside_an_expansion(env):
    testnodes.GATE.clear()
    control = RunControl()
    rec = Recorder()

    def on_event(name, data):
        rec(name, data)
        if name == "progress" and data["node"] == "2.steps" and data["value"] == 2:
            threading.Timer(0.05, testnodes.GATE.set).start()
            control.interrupt()

    flow = wf(n1={"type": "Source", "inputs": {"value": 1}},
              n2={"type": "SlowInside", "inputs": {"x": L("1")}},
              n3={"type": "Collect", "inputs": {"value": L("2")}})
    testnodes.GATE.set()  # let the first steps through; the interrupt lands at the next progress point
    result = Executor(env).run(flow, on_event=on_event, control=control)
    assert result.status == "interrupted"
    [stop] = rec.of("execution_interrupted")
    assert (stop["node_id"], stop["node_type"]) == ("2", "SlowInside")
    assert "Steps" not in testnodes.CALLS  # it never finished


def test_an_execution_blocker_stops_what_uses_it_and_the_run_goes_on(env):
    rec = Recorder()
    flow = wf(n1={"type": "Source", "inputs": {"value": 1}},
              n2={"type": "BlockUnless", "inputs": {"x": L("1"), "message": "not today"}},
              n3={"type": "AddOne", "inputs": {"x": L("2"), "tag": "blocked"}},
              n4={"type": "Collect", "inputs": {"value": L("3"), "tag": "blocked"}},
              n5={"type": "Collect", "inputs": {"value": L("1"), "tag": "free"}})
    result = Executor(env).run(flow, on_event=rec)
    assert result.status == "success" and result.errors == []
    assert "AddOne:blocked" not in testnodes.CALLS and "Collect:blocked" not in testnodes.CALLS
    assert result.outputs == {"5": {"values": [1]}}
    [blocked] = rec.of("execution_error")  # ComfyUI: the first node that receives it reports the message
    assert (blocked["node_id"], blocked["exception_message"], blocked["exception_type"]) == (
        "3", "Execution Blocked: not today", "ExecutionBlocked")
    assert [d["node"] for d in rec.of("executed")] == ["5"]


def test_an_expansion_may_link_to_a_workflow_node_nothing_else_needed(env):
    flow = wf(n1={"type": "Source", "inputs": {"value": 41, "tag": "aside"}},  # no output depends on it
              n2={"type": "Alias", "inputs": {"source": "1"}},
              n3={"type": "AddOne", "inputs": {"x": L("2")}},
              n4={"type": "Collect", "inputs": {"value": L("3")}})
    result = Executor(env).run(flow)
    assert result.status == "success", result.errors
    assert result.outputs["4"] == {"values": [42]} and result.executed == ["1", "2", "3", "4"]  # 2 ends after 1
    missing = Executor(env).run(wf(n2={"type": "Alias", "inputs": {"source": "nowhere"}},
                                   n4={"type": "Collect", "inputs": {"value": L("2")}}))
    assert missing.errors[0]["exception_message"] == ("the expansion of node 2 (Alias): output 0 links to node "
                                                      "'nowhere', which does not exist")
