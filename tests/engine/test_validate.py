import pytest

from nodegraph import INT, Choice, Int, Output, node
from nodegraph.executor import Executor
from nodegraph.validate import ValidationFailed, validate
from nodegraph.formats import parse_workflow

from tests.engine.helpers import L, make_env, wf


@pytest.fixture
def env(tmp_path, builtin_registry):
    return make_env(tmp_path, builtin_registry)


def issues_of(env, doc, **kw):
    plan, issues = validate(parse_workflow(doc, env.registry), env.registry, env, **kw)
    return issues


def test_every_class_of_mistake_in_one_report(env):
    doc = wf(n1={"type": "Source", "inputs": {"value": "seven"}},                 # wrong JSON type
             n2={"type": "AddOne", "inputs": {}},                                 # missing required link
             n3={"type": "NoSuchNode", "inputs": {}},                             # unknown type
             n4={"type": "Collect", "inputs": {"value": L("1"), "colour": 1}},     # unknown input
             n5={"type": "Collect", "inputs": {"value": L("42")}},                # dangling link
             n6={"type": "Collect", "inputs": {"value": L("1", "NOPE")}},         # missing output
             n7={"type": "ToText", "inputs": {"x": L("1")}},
             n8={"type": "AddOne", "inputs": {"x": L("7")}},                      # STRING into INT
             n9={"type": "Collect", "inputs": {"value": L("8")}},
             n10={"type": "Range", "inputs": {"n": 101}},                         # above max
             n11={"type": "Collect", "inputs": {"value": L("10")}},
             n12={"type": "MathInt", "inputs": {"a": 1, "b": 2, "op": "divide"}},  # not a choice
             n13={"type": "Collect", "inputs": {"value": L("12")}},
             n14={"type": "PrimitiveBoolean", "inputs": {"value": 1}},            # strict boolean
             n15={"type": "Collect", "inputs": {"value": L("14")}},
             n16={"type": "RandomInt", "inputs": {"min": 5, "max": 1}},           # node's own check
             n17={"type": "Collect", "inputs": {"value": L("16")}},
             n18={"type": "Collect", "inputs": {"value": L("2")}})
    issues = issues_of(env, doc)
    found = {(i.kind, i.node, i.input) for i in issues}
    assert ("bad_value", "1", "value") in found
    assert ("missing_input", "2", "x") in found
    assert ("unknown_type", "3", None) in found
    assert ("unknown_input", "4", "colour") in found
    assert ("bad_link", "5", "value") in found
    assert ("bad_link", "6", "value") in found
    assert ("type_mismatch", "8", "x") in found
    assert ("bad_value", "10", "n") in found
    assert ("bad_value", "12", "op") in found
    assert ("bad_value", "14", "value") in found
    assert ("bad_value", "16", None) in found
    messages = {(i.node, i.input): i.message for i in issues}
    assert "expected an integer" in messages[("1", "value")]
    assert "expects INT" in messages[("8", "x")] and "STRING" in messages[("8", "x")]
    assert "above the maximum 100" in messages[("10", "n")]
    assert "'add'" in messages[("12", "op")]
    assert "true or false" in messages[("14", "value")]
    with pytest.raises(ValidationFailed) as err:
        Executor(env).run(doc)
    assert len(err.value.issues) == len(issues)
    assert "node 8 (AddOne) input 'x'" in str(err.value)


def test_unknown_type_suggests_close_names(env):
    issues = issues_of(env, wf(n1={"type": "SaveImages", "inputs": {}}))
    [issue] = [i for i in issues if i.kind == "unknown_type"]
    assert "did you mean SaveImage" in issue.message


def test_cycle_detected(env):
    doc = wf(n1={"type": "AddOne", "inputs": {"x": L("3")}},
             n2={"type": "AddOne", "inputs": {"x": L("1")}},
             n3={"type": "AddOne", "inputs": {"x": L("2")}},
             n4={"type": "Collect", "inputs": {"value": L("3")}})
    issues = issues_of(env, doc)
    cycle = [i for i in issues if i.kind == "cycle"]
    assert cycle and "1, 2, 3" in cycle[0].message


def test_no_output_node(env):
    issues = issues_of(env, wf(n1={"type": "Source", "inputs": {}}))
    assert [i.kind for i in issues] == ["no_outputs"]


def test_step_grid_is_checked(env):
    doc = wf(n1={"type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
             n2={"type": "PreviewImage", "inputs": {"images": L("1")}})
    assert issues_of(env, doc) == []
    from nodegraph import Int, Output, INT, node
    from nodegraph.registry import Registry

    @node
    class Stepped:
        inputs = [Int("width", 64, min=16, max=4096, step=8)]
        outputs = [Output("INT", INT)]

        def run(self, ctx, width):
            return width

    env.registry.add_class(Stepped, "test")
    doc = wf(n1={"type": "Stepped", "inputs": {"width": 100}}, n2={"type": "Collect", "inputs": {"value": L("1")}})
    [issue] = issues_of(env, doc)
    assert "step grid" in issue.message and issue.input == "width"


def test_missing_model_file_names_folder_and_files(env, tmp_path):
    from nodegraph import ModelFile, Output, MODEL, node

    @node
    class FakeLoader:
        inputs = [ModelFile("ckpt_name", "checkpoints")]
        outputs = [Output("MODEL", MODEL)]

        def run(self, ctx, ckpt_name):
            return ckpt_name

    env.registry.add_class(FakeLoader, "test")
    (env.folders.models / "checkpoints").mkdir()
    (env.folders.models / "checkpoints" / "real.safetensors").write_bytes(b"x")
    doc = wf(n1={"type": "FakeLoader", "inputs": {"ckpt_name": "missing.safetensors"}},
             n2={"type": "Collect", "inputs": {"value": L("1")}})
    [issue] = issues_of(env, doc)
    assert str(env.folders.models / "checkpoints") in issue.message
    assert "real.safetensors" in issue.message


def test_deep_graph_has_no_recursion_limit(env):
    nodes = {"0": {"type": "Source", "inputs": {"value": 0}}}
    for k in range(1, 3000):
        nodes[str(k)] = {"type": "AddOne", "inputs": {"x": L(str(k - 1))}}
    nodes["out"] = {"type": "Collect", "inputs": {"value": L("2999")}}
    result = Executor(env).run({"version": 1, "nodes": nodes})
    assert result.outputs["out"] == {"values": [2999]}


def test_defaults_fill_missing_widgets(env):
    doc = wf(n1={"type": "Source", "inputs": {}}, n2={"type": "Collect", "inputs": {"value": L("1")}})
    assert Executor(env).run(doc).outputs["2"] == {"values": [1]}


def test_absurd_sizes_are_rejected_at_validation(env):
    doc = wf(n1={"type": "EmptyImage", "inputs": {"width": 16384, "height": 16384, "batch_size": 64}},
             n2={"type": "PreviewImage", "inputs": {"images": L("1")}})
    [issue] = issues_of(env, doc)
    assert issue.node == "1" and "pixels, above the limit" in issue.message


def test_a_string_link_feeds_a_choice_input_and_an_int_link_does_not(env):
    """Validation asks SocketType.accepts alone: STRING -> COMBO links, INT -> COMBO is a type mismatch."""
    doc = wf(n1={"type": "PrimitiveString", "inputs": {"value": "add"}},
             n2={"type": "MathInt", "inputs": {"a": 1, "b": 2, "op": L("1")}},
             n3={"type": "Collect", "inputs": {"value": L("2")}})
    assert issues_of(env, doc) == []
    assert Executor(env).run(doc).outputs["3"] == {"values": [3]}
    doc["nodes"]["1"] = {"type": "Source", "inputs": {"value": 4}}
    [issue] = issues_of(env, doc)
    assert (issue.kind, issue.node, issue.input) == ("type_mismatch", "2", "op")
    assert "expects COMBO" in issue.message and "gives INT" in issue.message


@node
class PickOddOrEven:
    """A node whose own check names the input at fault (validate_inputs returns {input: message})."""
    inputs = [Int("number", 1), Choice("parity", ["odd", "even"])]
    outputs = [Output("number", INT)]

    @classmethod
    def validate_inputs(cls, number, parity):
        if (number % 2 == 1) != (parity == "odd"):
            return {"number": f"{number} is not {parity}"}
        return None

    def run(self, ctx, number, parity):
        return number


def test_a_node_check_that_names_its_input_is_reported_on_that_input(env):
    env.registry.add_class(PickOddOrEven, "tests")
    doc = wf(n1={"type": "PickOddOrEven", "inputs": {"number": 4, "parity": "odd"}},
             n2={"type": "Collect", "inputs": {"value": L("1")}},
             n3={"type": "PickOddOrEven", "inputs": {"number": 3, "parity": "odd"}},
             n4={"type": "Collect", "inputs": {"value": L("3")}})
    [issue] = issues_of(env, doc)
    assert (issue.kind, issue.node, issue.node_type, issue.input) == ("bad_value", "1", "PickOddOrEven", "number")
    assert issue.message == "4 is not odd"  # the input is a field of the record, not repeated in the text
    assert str(issue) == "node 1 (PickOddOrEven) input 'number': 4 is not odd"
