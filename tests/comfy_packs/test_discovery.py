"""Discovery of ComfyUI packs in the plugins folder, and the V1 declarations as NodeSpecs.
Expected behaviour: ComfyUI 0.8's nodes.py load_custom_node and server.py node_info."""
from __future__ import annotations

import sys

from nodegraph.registry import default_registry

from .conftest import PACKS


def problems_of(registry) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in registry.problems:
        out.setdefault(p.source.rsplit("/", 1)[-1], []).append(p.message)
    return out


def test_packs_load_beside_ours_and_failures_stay_per_pack(comfy_registry):
    problems = problems_of(comfy_registry)
    assert "SaveImage" in comfy_registry and "TestImageBrightness" in comfy_registry  # ours and theirs
    [missing_dep] = problems["broken_import"]
    assert "broken_import failed to import" in missing_dep and "a_dependency_nobody_installed" in missing_dep
    [surface] = problems["broken_surface.py"]
    assert surface.startswith("ComfyUI pack broken_surface failed to import: pack 'broken_surface' uses "
                              "folder_paths.a_function_comfyui_never_had, which nodegraph's ComfyUI compatibility")
    declaration = problems["broken_declaration"]
    assert len(declaration) == 2
    assert any("node TestBadInput skipped" in m and "input 'x' must be declared as (type, options)" in m
               for m in declaration)
    assert any("node TestNoFunction skipped" in m and "FUNCTION must name a method" in m for m in declaration)
    assert "TestGood" in comfy_registry  # the broken declarations do not take the pack's other nodes down
    tracebacks = [p.traceback for p in comfy_registry.problems if p.source.endswith("broken_import")]
    assert "a_dependency_nobody_installed" in tracebacks[0]


def test_import_times_list_every_pack(comfy_registry):
    lines = comfy_registry.import_times()
    packs = [p for p in PACKS.iterdir() if p.name != "__pycache__" and not p.name.startswith(".")]
    assert len(lines) == len(packs) >= 10  # one line per pack of the folder, failed ones included
    failed = [line for line in lines if "(IMPORT FAILED)" in line]
    assert len(failed) == 2 and any("broken_import" in line for line in failed)
    assert any("image_mask_utils (ComfyUI pack, 11 node(s))" in line for line in lines)
    assert all(" seconds" in line for line in lines)


def test_web_directory_recorded(comfy_registry):
    assert comfy_registry.web_directories == {"web_routes": (PACKS / "web_routes" / "js").resolve()}
    assert "nodegraph_plugins.web_routes" in comfy_registry.loaded_modules  # what /extensions routes read


def test_comfy_modules_only_after_a_comfy_pack(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "plain.py").write_text("from nodegraph import node, Int, Output, INT\n"
                                      "# mentions NODE_CLASS_MAPPINGS in a comment only\n"
                                      "@node\nclass PlainDouble:\n    inputs = [Int('x', 2)]\n"
                                      "    outputs = [Output('INT', INT)]\n"
                                      "    def run(self, ctx, x):\n        return 2 * x\n")
    registry = default_registry(plugins, builtins=False)
    assert "PlainDouble" in registry and not registry.problems
    assert registry.loads[0].kind == "nodegraph"


def test_v1_declaration_becomes_a_nodespec(comfy_registry):
    spec = comfy_registry.get("TestImageBrightness")
    assert spec.display_name == "Image Brightness (test)" and spec.category == "test_pack/image"
    assert spec.description == "Multiply the pixels by a factor, clamped to 0..1."
    image, factor = spec.inputs
    assert (image.name, image.type.name, image.tooltip) == ("image", "IMAGE", "the image to scale")
    assert (factor.type.name, factor.default, factor.min, factor.max, factor.step) == ("FLOAT", 1.0, 0.0, 4.0, 0.05)
    assert spec.module == "nodegraph_plugins.image_mask_utils.images"
    assert comfy_registry.get("TestResolution").display_name == "TestResolution"  # ComfyUI shows the class name

    join = comfy_registry.get("TestImageBatchFromList")
    assert all(i.is_list for i in join.inputs)  # INPUT_IS_LIST
    assert [(o.name, o.type.name) for o in join.outputs] == [("images", "IMAGE"), ("count", "INT")]
    assert comfy_registry.get("TestImageListFromBatch").outputs[0].is_list  # OUTPUT_IS_LIST

    mask = comfy_registry.get("TestMaskFromImage")
    channel = mask.input_by_name["channel"]
    assert channel.type.name == "COMBO" and channel.default == "green"
    assert comfy_registry.get("TestMaskBBox").outputs[0].type.name == "BBOX"  # the pack's own type, by name
    assert comfy_registry.get("TestPassAny").inputs[0].type.name == "*"  # AnyType("*")
    show = comfy_registry.get("TestShowText")
    assert show.output_node and show.input_by_name["text"].force_input
    assert [i.name for i in show.inputs] == ["text"]  # hidden inputs are filled at run time, not declared
    lazy = comfy_registry.get("TestLazySwitch")
    assert lazy.has_lazy and [i.name for i in lazy.inputs if i.lazy] == ["a", "b"]
    # VALIDATE_INPUTS names `file`: ComfyUI skips the list check for it, so any string is accepted
    assert comfy_registry.get("TestLoadText").input_by_name["file"].type.name == "STRING"


def test_nodes_package_serves_comfyui_names_and_stays_ours(comfy_registry):
    import nodes

    assert nodes.MAX_RESOLUTION == 16384
    from nodes import image as our_image_pack  # our subpackages still win

    assert our_image_pack.__name__ == "nodes.image"
    invert = nodes.NODE_CLASS_MAPPINGS["ImageInvert"]
    assert invert.FUNCTION == "invert" and invert.RETURN_TYPES == ("IMAGE",)
    assert nodes.NODE_CLASS_MAPPINGS["TestMaskBBox"].__name__ == "TestMaskBBox"  # a pack's own class
    assert sys.modules["folder_paths"].__name__ == "nodegraph.comfy_compat.folder_paths"


def test_worker_recipe_loads_each_pack_again_from_its_plugin_path(tmp_path):
    """A worker process rebuilds the registry from EnvRecipe: every pack node comes back through its pack's
    path, even a class whose __module__ is a library the pack imported it from (not importable as a plugin)."""
    from nodegraph.environment import Environment
    from nodegraph.folders import Folders
    from nodegraph.workers.recipe import EnvRecipe

    pack = tmp_path / "plugins" / "foreign_class.py"
    pack.parent.mkdir()
    pack.write_text(
        "class Passthrough:\n"
        "    INPUT_TYPES = classmethod(lambda cls: {'required': {'value': ('INT', {'default': 1})}})\n"
        "    RETURN_TYPES = ('INT',)\n"
        "    FUNCTION = 'run'\n"
        "    def run(self, value):\n"
        "        return (value,)\n"
        "Passthrough.__module__ = 'a_library_the_pack_uses.nodes'\n"
        "NODE_CLASS_MAPPINGS = {'TestForeignPassthrough': Passthrough}\n")
    registry = default_registry(pack.parent, builtins=False)
    assert "TestForeignPassthrough" in registry
    recipe = EnvRecipe.of(Environment(registry=registry, folders=Folders(tmp_path)))
    assert recipe.plugin_paths == (str(pack),) and recipe.modules == ()
    assert recipe.build().registry.specs.keys() == {"TestForeignPassthrough"}
