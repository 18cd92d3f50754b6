"""Muted and bypassed nodes in native workflows (what the editor queues), and the ComfyUI UI import
that keeps them for the editor. The rules are ComfyUI's frontend's (modes 2 "never" and 4 "bypass",
resolved before the prompt is sent; see nodegraph/formats/comfy_graph.py)."""
from PIL import Image

from nodegraph.executor import Executor
from nodegraph.formats import parse_workflow
from nodegraph.validate import validate

from tests.engine.test_formats import comfy_ui_doc


def chain(mode_of_flip=None, mode_of_invert=None):
    """EmptyImage → ImageFlip → ImageInvert → SaveImage."""
    doc = {"version": 1, "nodes": {
        "1": {"type": "EmptyImage", "inputs": {"width": 32, "height": 16, "batch_size": 1, "color": 0}},
        "2": {"type": "ImageFlip", "inputs": {"image": {"node": "1", "output": "IMAGE"}, "flip_method": "x-axis: vertically"}},
        "3": {"type": "ImageInvert", "inputs": {"image": {"node": "2", "output": "IMAGE"}}},
        "4": {"type": "SaveImage", "inputs": {"images": {"node": "3", "output": "IMAGE"}, "filename_prefix": "m"}}}}
    if mode_of_flip:
        doc["nodes"]["2"]["mode"] = mode_of_flip
    if mode_of_invert:
        doc["nodes"]["3"]["mode"] = mode_of_invert
    return parse_workflow(doc)


def test_bypassed_node_passes_its_matching_input_through(env):
    workflow = chain(mode_of_invert="bypassed")
    plan, _ = validate(workflow, env.registry, env)
    assert "3" not in plan.nodes and plan.nodes["4"].links["images"] == ("2", 0)
    result = Executor(env).run(workflow)
    assert result.status == "success"
    # the invert did not run: the black EmptyImage reaches SaveImage unchanged
    saved = Image.open(env.folders.output / result.outputs["4"]["images"][0]["filename"])
    assert saved.getextrema() == ((0, 0), (0, 0), (0, 0))


def test_chained_bypasses_follow_through(env):
    plan, issues = validate(chain("bypassed", "bypassed"), env.registry, env)
    assert not issues
    assert plan.nodes["4"].links["images"] == ("1", 0)


def test_muted_source_of_a_required_input_is_an_error_naming_it(env):
    _, issues = validate(chain(mode_of_invert="muted"), env.registry, env)
    assert [(i.node, i.input, i.kind) for i in issues] == [("4", "images", "missing_input")]
    assert "node 3 (ImageInvert), which is muted" in issues[0].message


def test_bypass_with_nothing_of_the_wanted_type_is_an_error(env):
    doc = {"version": 1, "nodes": {
        "1": {"type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"type": "ImageToMask", "mode": "bypassed", "inputs": {"image": {"node": "1", "output": "IMAGE"}, "channel": "red"}},
        "3": {"type": "MaskToImage", "inputs": {"mask": {"node": "2", "output": "MASK"}}},
        "4": {"type": "PreviewImage", "inputs": {"images": {"node": "3", "output": "IMAGE"}}}}}
    _, issues = validate(parse_workflow(doc), env.registry, env)
    assert [(i.node, i.input) for i in issues] == [("3", "mask")]
    assert "node 2 (ImageToMask), which is bypassed" in issues[0].message


def test_muted_output_node_does_not_run(env):
    doc = chain()
    doc.nodes["4"].mode = "muted"
    _, issues = validate(doc, env.registry, env)
    assert [i.kind for i in issues] == ["no_outputs"]
    # requesting it explicitly is no error either: it is skipped, as ComfyUI skips muted outputs
    _, issues = validate(doc, env.registry, env, outputs=["4"])
    assert [i.kind for i in issues] == ["no_outputs"]


def test_mode_survives_a_json_round_trip():
    doc = chain(mode_of_flip="bypassed").to_json()
    assert doc["nodes"]["2"]["mode"] == "bypassed"
    assert parse_workflow(doc).nodes["2"].mode == "bypassed"


def test_ui_import_for_the_editor_keeps_modes_flags_and_colours(env):
    doc = comfy_ui_doc()
    doc["nodes"][3].update(flags={"collapsed": True, "pinned": True}, color="#332922", bgcolor="#593930")
    kept = parse_workflow(doc, env.registry, keep_modes=True)
    assert kept.nodes["3"].mode == "bypassed" and kept.nodes["8"].mode == "muted"
    assert kept.nodes["4"].inputs["image"] == {"node": "3", "output": 0}  # still linked to the bypassed node
    assert kept.nodes["4"].ui == {"collapsed": True, "pinned": True, "color": "#332922", "bgcolor": "#593930"} | {
        k: v for k, v in kept.nodes["4"].ui.items() if k in ("pos", "size")}
    # and it plans as the resolved import does
    plain = parse_workflow(comfy_ui_doc(), env.registry)
    plan_kept, plan_plain = validate(kept, env.registry, env)[0], validate(plain, env.registry, env)[0]
    assert {k: n.links for k, n in plan_kept.nodes.items()} == {k: n.links for k, n in plan_plain.nodes.items()}
    result = Executor(env).run(kept)
    assert result.status == "success" and result.value("4").shape == (1, 8, 48, 3)


def test_api_export_resolves_modes(env):
    from nodegraph.formats import comfy_api

    prompt = comfy_api.from_native(chain(mode_of_flip="bypassed"), env.registry)
    assert "2" not in prompt and prompt["3"]["inputs"]["image"] == ["1", 0]
