"""Our Switch is ComfyUI 0.8's ComfySoftSwitchNode (comfy_extras/nodes_logic.py: node_id
"ComfySoftSwitchNode", inputs switch / on_false / on_true, optional and lazy; "ComfySwitchNode" is
the same with required branches): exports write ComfyUI's name, imports of either name run ours."""
from nodegraph.executor import Executor
from nodegraph.formats import comfy_api, parse_workflow
from nodegraph.formats.comfy_names import comfy_name, native_name

UI_DOC = {
    "last_node_id": 4, "last_link_id": 3, "version": 0.4, "groups": [],
    "nodes": [
        {"id": 1, "type": "PrimitiveInt", "widgets_values": [3, "fixed"],
         "outputs": [{"name": "INT", "type": "INT", "links": [1]}]},
        {"id": 2, "type": "PrimitiveInt", "widgets_values": [9, "fixed"],
         "outputs": [{"name": "INT", "type": "INT", "links": [2]}]},
        {"id": 3, "type": "ComfySwitchNode", "widgets_values": [False],
         "inputs": [{"name": "switch", "type": "BOOLEAN", "widget": {"name": "switch"}, "link": None},
                    {"name": "on_false", "type": "*", "link": 2}, {"name": "on_true", "type": "*", "link": 1}],
         "outputs": [{"name": "output", "type": "*", "links": [3]}]},
        {"id": 4, "type": "PreviewAny", "inputs": [{"name": "source", "type": "*", "link": 3}]},
    ],
    "links": [[1, 1, 0, 3, 2, "INT"], [2, 2, 0, 3, 1, "INT"], [3, 3, 0, 4, 0, "*"]],
}


def test_comfyui_switch_runs_as_ours(env):
    workflow = parse_workflow(UI_DOC, env.registry)
    assert workflow.nodes["3"].type == "Switch"
    result = Executor(env).run(workflow)
    assert result.outputs["4"] == {"text": ["9"]}  # switch false: on_false


def test_api_export_uses_comfyui_name_and_reads_back(env):
    workflow = parse_workflow(UI_DOC, env.registry)
    prompt = comfy_api.from_native(workflow, env.registry)
    assert prompt["3"]["class_type"] == "ComfySoftSwitchNode"
    assert parse_workflow(prompt, env.registry).nodes["3"].type == "Switch"


def test_registry_name_wins(env):
    assert comfy_name("Switch") == "ComfySoftSwitchNode" and comfy_name("KSampler") == "KSampler"
    assert native_name("ComfySwitchNode", env.registry) == "Switch"

    class WithIt:
        def get(self, kind):
            return object() if kind == "ComfySwitchNode" else None
    assert native_name("ComfySwitchNode", WithIt()) == "ComfySwitchNode"


def test_server_conversion_keeps_notes_and_seed_controls(env):
    """A UI document the editor cannot show as it is (here: a bypassed node) is converted by the
    server; its root notes and the seeds' control values still reach the editor."""
    doc = {"last_node_id": 9, "last_link_id": 1, "version": 0.4, "groups": [], "links": [[1, 1, 0, 2, 0, "INT"]],
           "nodes": [{"id": 1, "type": "PrimitiveInt", "widgets_values": [3, "randomize"],
                      "outputs": [{"name": "INT", "type": "INT", "links": [1]}]},
                     {"id": 2, "type": "PreviewAny", "mode": 4, "inputs": [{"name": "source", "type": "*", "link": 1}]},
                     {"id": 9, "type": "MarkdownNote", "pos": [5, 6], "size": [300, 80], "widgets_values": ["# hi"],
                      "color": "#432", "bgcolor": "#653"}]}
    workflow = parse_workflow(doc, env.registry)
    assert workflow.nodes["1"].inputs == {"value": 3}
    assert workflow.nodes["1"].ui["controls"] == {"value": "randomize"}
    assert workflow.ui["notes"] == [{"id": "9", "type": "MarkdownNote", "pos": [5, 6], "text": "# hi", "size": [300, 80],
                                     "color": "#432", "bgcolor": "#653"}]
    assert "9" not in workflow.nodes
