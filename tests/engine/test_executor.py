import threading
import time

import pytest
import torch

from nodegraph.cache import OutputCache
from nodegraph.executor import Executor
from nodegraph.node import RunControl
from nodegraph.validate import ValidationFailed

from tests.engine import testnodes
from tests.engine.helpers import L, Recorder, make_env, wf


@pytest.fixture
def env(tmp_path, builtin_registry):
    testnodes.CALLS.clear()
    return make_env(tmp_path, builtin_registry)


def chain(value=1, tag_out="out"):
    return wf(n1={"type": "Source", "inputs": {"value": value, "tag": "a"}},
              n2={"type": "AddOne", "inputs": {"x": L("1"), "tag": "b"}},
              n3={"type": "AddOne", "inputs": {"x": L("2"), "tag": "c"}},
              n4={"type": "Collect", "inputs": {"value": L("3"), "tag": tag_out}})


def test_runs_in_order_and_reports_outputs(env):
    rec = Recorder()
    result = Executor(env).run(chain(5), on_event=rec)
    assert result.status == "success"
    assert result.executed == ["1", "2", "3", "4"]
    assert result.outputs["4"] == {"values": [7]}
    assert rec.names()[0] == "execution_start"
    assert [d["node"] for d in rec.of("executing")] == ["1", "2", "3", "4", None]
    assert rec.of("executed")[0]["output"] == {"values": [7]}
    assert "execution_success" in rec.names()
    assert all(d["prompt_id"] == result.job_id for _, d in rec.events)


def test_node_warning_is_an_event_and_the_run_goes_on(env):
    rec = Recorder()
    doc = wf(n1={"type": "Source", "inputs": {"value": 3, "tag": "w"}}, n2={"type": "Warns", "inputs": {"x": L("1")}},
             n3={"type": "Collect", "inputs": {"value": L("2"), "tag": "w"}})
    result = Executor(env).run(doc, on_event=rec)
    assert result.status == "success" and result.outputs["3"] == {"values": [3]}
    assert rec.of("warning") == [{"node": "2", "node_type": "Warns", "message": "careful with 3",
                                  "prompt_id": result.job_id}]


def test_identical_rerun_executes_nothing(env):
    ex = Executor(env)
    ex.run(chain())
    before = dict(testnodes.CALLS)
    rec = Recorder()
    result = ex.run(chain(), on_event=rec)
    assert result.executed == []
    assert result.cached == ["4"]  # the output hit cuts off everything upstream
    assert result.outputs["4"] == {"values": [3]}
    assert testnodes.CALLS == before
    # ComfyUI's execution.py lists every node of the prompt whose result is cached, in prompt order
    assert rec.of("execution_cached")[0]["nodes"] == ["1", "2", "3", "4"]


def test_changed_parameter_reruns_only_downstream(env):
    ex = Executor(env)
    doc = chain()
    ex.run(doc)
    doc["nodes"]["2"]["inputs"]["tag"] = "b2"  # middle of the chain
    result = ex.run(doc)
    assert result.executed == ["2", "3", "4"]
    assert "1" in result.cached
    assert testnodes.CALLS["Source:a"] == 1


def test_lazy_branch_not_executed(env):
    doc = wf(n1={"type": "Source", "inputs": {"value": 1, "tag": "yes"}},
             n2={"type": "Source", "inputs": {"value": 2, "tag": "no"}},
             n3={"type": "Switch", "inputs": {"switch": True, "on_true": L("1"), "on_false": L("2")}},
             n4={"type": "Collect", "inputs": {"value": L("3")}})
    result = Executor(env).run(doc)
    assert result.outputs["4"] == {"values": [1]}
    assert "Source:no" not in testnodes.CALLS
    assert "2" not in result.executed
    doc["nodes"]["3"]["inputs"]["switch"] = False
    result = Executor(env).run(doc)
    assert result.outputs["4"] == {"values": [2]}
    assert testnodes.CALLS["Source:yes"] == 1  # not recomputed


def test_error_reports_and_keeps_independent_branch(env):
    rec = Recorder()
    doc = wf(n1={"type": "Source", "inputs": {"value": 4, "tag": "s"}},
             n2={"type": "Boom", "inputs": {"x": L("1")}},
             n3={"type": "Collect", "inputs": {"value": L("2"), "tag": "dead"}},
             n4={"type": "AddOne", "inputs": {"x": L("1"), "tag": "alive"}},
             n5={"type": "Collect", "inputs": {"value": L("4"), "tag": "alive"}})
    ex = Executor(env)
    result = ex.run(doc, on_event=rec)
    assert result.status == "error"
    [error] = result.errors
    assert error["node_id"] == "2" and error["node_type"] == "Boom"
    assert "boom at 4" in error["exception_message"]
    assert any("RuntimeError" in line for line in error["traceback"])
    assert rec.of("execution_error")[0]["node_id"] == "2"
    assert result.skipped == ["3"]
    assert result.outputs["5"] == {"values": [5]}  # the independent branch finished
    assert "execution_success" not in rec.names()
    # the cache stays consistent: failed node not cached, good ones are
    result = ex.run(doc)
    assert result.errors and result.errors[0]["node_id"] == "2"
    assert "5" in result.cached and "2" not in result.cached


def test_lists_map_over_items_and_is_list_receives_all(env):
    doc = wf(n1={"type": "Range", "inputs": {"n": 4}},
             n2={"type": "AddOne", "inputs": {"x": L("1")}},
             n3={"type": "SumList", "inputs": {"values": L("2")}},
             n4={"type": "Collect", "inputs": {"value": L("3")}})
    result = Executor(env).run(doc)
    assert result.values["2"][0] == [1, 2, 3, 4]
    assert result.outputs["4"] == {"values": [10]}


def test_progress_events_and_interrupt(env):
    rec = Recorder()
    doc = wf(n1={"type": "Source", "inputs": {"value": 1}},
             n2={"type": "Steps", "inputs": {"x": L("1"), "n": 50, "wait": 1}},
             n3={"type": "Collect", "inputs": {"value": L("2")}})
    ex = Executor(env)
    testnodes.GATE.clear()
    results = []
    thread = threading.Thread(target=lambda: results.append(ex.run(doc, on_event=rec)))
    thread.start()
    deadline = time.time() + 10
    while not any(n == "executing" and d["node"] == "2" for n, d in rec.events) and time.time() < deadline:
        time.sleep(0.01)
    ex.interrupt()
    testnodes.GATE.set()
    thread.join(10)
    testnodes.GATE.clear()
    [result] = results
    assert result.status == "interrupted"
    assert rec.of("execution_interrupted")[0]["node_id"] == "2"
    assert "Steps" not in testnodes.CALLS
    # nothing half-done was cached: a new run (not interrupted) completes
    testnodes.GATE.set()
    doc["nodes"]["2"]["inputs"]["n"] = 3
    rec2 = Recorder()
    assert ex.run(doc, on_event=rec2).status == "success"
    assert [(d["value"], d["max"]) for d in rec2.of("progress")] == [(1, 3), (2, 3), (3, 3)]
    testnodes.GATE.clear()


def test_nondeterministic_node_always_reruns(env):
    doc = wf(n1={"type": "RandomInt", "inputs": {"min": 0, "max": 10**9}},
             n2={"type": "Collect", "inputs": {"value": L("1")}})
    ex = Executor(env)
    assert ex.run(doc).executed == ["1", "2"]
    assert ex.run(doc).executed == ["1", "2"]  # never served from the cache


def test_fingerprint_reruns_when_file_changes(env):
    from PIL import Image

    path = env.folders.input / "pic.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(path)
    doc = wf(n1={"type": "LoadImage", "inputs": {"image": "pic.png"}},
             n2={"type": "PreviewAny", "inputs": {"source": L("1")}})
    ex = Executor(env)
    assert ex.run(doc).executed == ["1", "2"]
    assert ex.run(doc).executed == []
    Image.new("RGB", (8, 8), (0, 0, 255)).save(path)
    result = ex.run(doc)
    assert result.executed == ["1", "2"]
    assert torch.allclose(result.value("1")[0, 0, 0], torch.tensor([0.0, 0.0, 1.0]))


def test_switching_workflows_keeps_both_cached(env):
    ex = Executor(env)
    a, b = chain(1, "A"), chain(100, "B")
    ex.run(a)
    ex.run(b)
    assert ex.run(a).executed == []
    assert ex.run(b).executed == []


def test_cache_is_bounded_in_bytes():
    cache = OutputCache(max_bytes=1000)
    cache.put("a", torch.zeros(100))  # 400 bytes
    cache.put("b", torch.zeros(100))
    assert cache.get("a") is not None  # a is now most recent
    cache.put("c", torch.zeros(100))  # evicts b, the least recently used
    assert "b" not in cache and "a" in cache and "c" in cache
    assert cache.size_bytes <= 1000
    cache.put("huge", torch.zeros(1000))  # larger than the cache: never stored
    assert "huge" not in cache and "a" in cache


def test_validation_failure_runs_nothing(env):
    doc = chain()
    doc["nodes"]["2"]["inputs"]["x"] = L("99")
    with pytest.raises(ValidationFailed):
        Executor(env).run(doc)
    assert testnodes.CALLS == {}


def test_only_needed_nodes_run(env):
    doc = chain()
    doc["nodes"]["9"] = {"type": "Source", "inputs": {"value": 1, "tag": "orphan"}}
    result = Executor(env).run(doc)
    assert "9" not in result.executed and "Source:orphan" not in testnodes.CALLS


def test_requested_outputs_only(env):
    doc = chain()
    doc["nodes"]["5"] = {"type": "Collect", "inputs": {"value": L("1"), "tag": "other"}}
    result = Executor(env).run(doc, outputs=["5"])
    assert result.executed == ["1", "5"]


# --- run state belongs to the run (issue 14) --------------------------------------------------------

def slow_doc(n=50):
    return wf(n1={"type": "Source", "inputs": {"value": 1}},
              n2={"type": "Steps", "inputs": {"x": L("1"), "n": n, "wait": 1}},
              n3={"type": "Collect", "inputs": {"value": L("2")}})


def test_an_interrupt_made_before_the_run_starts_is_honoured_before_the_first_node(env):
    control = RunControl()
    control.interrupt()
    rec = Recorder()
    result = Executor(env).run(chain(), on_event=rec, control=control)
    assert result.status == "interrupted" and result.executed == []
    assert rec.of("execution_interrupted")[0]["node_id"] == "1"
    assert testnodes.CALLS == {}


def test_interrupting_one_run_never_stops_another(env):
    """Two runs on one executor at once: interrupting the first leaves the second to finish; a run that
    starts after an interrupted one is not interrupted either (nothing shared is left set)."""
    ex = Executor(env)
    first, second = RunControl(), RunControl()
    results = {}
    testnodes.GATE.clear()
    threads = [threading.Thread(target=lambda c=c, k=k: results.update({k: ex.run(slow_doc(3 + k), control=c)}))
               for k, c in enumerate((first, second))]
    for t in threads:
        t.start()
    first.interrupt()
    testnodes.GATE.set()
    for t in threads:
        t.join(10)
    testnodes.GATE.clear()
    assert results[0].status == "interrupted"
    assert results[1].status == "success" and results[1].outputs["3"] == {"values": [5]}
    assert ex.run(chain()).status == "success"


def test_executor_interrupt_acts_on_the_run_in_progress_only(env):
    ex = Executor(env)
    assert ex.interrupt() is False  # nothing runs: nothing to stop, nothing remembered
    assert ex.run(chain()).status == "success"
    testnodes.GATE.clear()
    results = []
    rec = Recorder()
    thread = threading.Thread(target=lambda: results.append(ex.run(slow_doc(), on_event=rec)))
    thread.start()
    deadline = time.time() + 10
    while not rec.of("executing") and time.time() < deadline:
        time.sleep(0.01)
    assert ex.interrupt() is True
    testnodes.GATE.set()
    thread.join(10)
    assert results[0].status == "interrupted"
    assert ex.run(slow_doc(2)).status == "success"  # the next run starts clean
    testnodes.GATE.clear()


def test_check_lazy_and_run_see_the_same_node_object(env):
    doc = wf(n1={"type": "Source", "inputs": {"value": 10, "tag": "a"}},
             n2={"type": "Source", "inputs": {"value": 20, "tag": "b"}},
             n3={"type": "RemembersLazyAnswer", "inputs": {"use_a": False, "a": L("1"), "b": L("2")}},
             n4={"type": "Collect", "inputs": {"value": L("3")}})
    result = Executor(env).run(doc)
    assert result.status == "success", result.errors
    assert result.outputs["4"] == {"values": [20]} and "Source:a" not in testnodes.CALLS


def test_a_context_is_built_with_keywords_and_defaults(env):
    """Tests build real contexts (issue 14): everything but the environment has a default."""
    from nodegraph.node import Context, Interrupted

    ctx = Context(env)
    assert ctx.devices is env.devices and ctx.workflow == {} and ctx.extra == {} and ctx.ui == {}
    ctx.progress(1, 2)  # no listener: the event goes nowhere
    with pytest.raises(TypeError):
        Context(env, "3", "KSampler")  # the rest is keywords only
    seen, control = [], RunControl()
    ctx = Context(env, node_id="3", node_type="KSampler", workflow=lambda: {"version": 1, "nodes": {}},
                  emit=lambda name, data: seen.append((name, data)), control=control)
    ctx.progress(1, 4)
    assert seen == [("progress", {"node": "3", "value": 1, "max": 4})] and ctx.workflow["version"] == 1
    control.interrupt()
    with pytest.raises(Interrupted):
        ctx.progress(2, 4)
