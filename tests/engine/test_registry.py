import textwrap

from nodegraph import INT, Int, Output, node
from nodegraph.registry import Registry, default_registry


def write(path, text):
    path.write_text(textwrap.dedent(text))


def test_builtin_packs_load_through_entry_points(builtin_registry):
    assert {"primitives", "image"} <= {m.split(".")[-1] for m in builtin_registry.loaded_modules}
    assert "SaveImage" in builtin_registry and "MathInt" in builtin_registry


def test_plugin_failures_are_isolated(tmp_path):
    plugins = tmp_path / "custom_nodes"
    plugins.mkdir()
    write(plugins / "broken_import.py", "import no_such_module_anywhere\n")
    write(plugins / "good.py", """
        from nodegraph import node, Int, Output, INT

        @node(category="plugin")
        class PluginDouble:
            inputs = [Int("x", 2)]
            outputs = [Output("INT", INT)]
            def run(self, ctx, x):
                return 2 * x

        @node
        class BrokenDecl:
            inputs = ["not an Input"]
            outputs = [Output("INT", INT)]
            def run(self, ctx):
                return 1
    """)
    (plugins / "pkg").mkdir()
    write(plugins / "pkg" / "__init__.py", "from .impl import *\n")
    write(plugins / "pkg" / "impl.py", """
        from nodegraph import node, Output, INT
        @node
        class PackageNode:
            outputs = [Output("INT", INT)]
            def run(self, ctx):
                return 7
    """)
    write(plugins / "clash.py", """
        from nodegraph import node, Output, INT
        @node(name="SaveImage")
        class MySave:
            outputs = [Output("INT", INT)]
            def run(self, ctx):
                return 0
    """)
    registry = default_registry(plugins)
    assert "PluginDouble" in registry and "PackageNode" in registry
    assert "BrokenDecl" not in registry
    assert registry.get("SaveImage").module.startswith("nodes.image")  # never overwritten
    problems = {p.source.split("/")[-1]: p for p in registry.problems}
    assert "no_such_module_anywhere" in problems["broken_import.py"].message
    assert "Traceback" in problems["broken_import.py"].traceback
    assert "BrokenDecl" in problems["good.py"].message and "Input objects" in problems["good.py"].message
    assert "already registered by nodes.image" in problems["clash.py"].message


def test_decorator_returns_the_same_class_and_schema():
    @node(category="math", description="Doubles.")
    class Double:
        inputs = [Int("x", 1, min=0, max=10, step=1)]
        outputs = [Output("twice", INT)]

        def run(self, ctx, x):
            return 2 * x

    spec = Double.__nodegraph_spec__
    assert spec.cls is Double
    schema = spec.schema()
    assert schema["inputs"][0] == {"name": "x", "type": "INT", "required": True, "widget": True, "default": 1,
                                   "min": 0, "max": 10, "step": 1, "color": "#7fb069"}
    assert schema["outputs"] == [{"name": "twice", "type": "INT", "is_list": False, "color": "#7fb069"}]
    registry = Registry()
    assert registry.add_class(Double, "test") and registry.get("Double") is spec


def test_socket_type_compatibility():
    from nodegraph.types import ANY, IMAGE, MASK, SocketType

    assert IMAGE.accepts(IMAGE) and not IMAGE.accepts(MASK)
    assert ANY.accepts(MASK) and IMAGE.accepts(ANY)
    union = IMAGE | MASK
    assert union.accepts(MASK) and union.accepts(IMAGE)
    assert SocketType("IMAGE,MASK").accepts(IMAGE)
    assert not SocketType("LATENT").accepts(IMAGE)


def test_a_choice_input_takes_a_string_output_and_only_that():
    """The COMBO<-STRING rule lives in SocketType.accepts (issue 14: one source of truth): a STRING
    output may feed a choice, as ComfyUI lets a string feed a combo; nothing else widens."""
    from nodegraph.types import COMBO, INT, STRING

    assert COMBO.accepts(STRING) and COMBO.accepts(COMBO)
    assert not STRING.accepts(COMBO) and not COMBO.accepts(INT)


def test_packs_declare_their_own_socket_types_shared_by_name(tmp_path):
    """A pack's SocketType constants are registered by name with their editor colour; another pack may
    name the same type (even as a plain string, without importing the first) and shares it, as ComfyUI's
    type strings are shared; the first colour declared wins, and the engine's types keep theirs."""
    from nodegraph.environment import Environment
    from nodegraph.folders import Folders
    from nodegraph.types import common_types

    plugins = tmp_path / "custom_nodes"
    plugins.mkdir()
    write(plugins / "maker.py", """
        from nodegraph import node, Output, SocketType
        WIDGET = SocketType("WIDGET_T", "#123456")
        @node
        class MakeWidget:
            # a type met only on a socket (a package may declare its types in a submodule) counts too
            outputs = [Output("WIDGET", WIDGET), Output("GADGET", SocketType("GADGET_T", "#abcdef"))]
            def run(self, ctx):
                return object(), object()
    """)
    write(plugins / "user.py", """
        from nodegraph import node, Input, Output, SocketType, INT
        SAME = SocketType("WIDGET_T", "#ffffff")   # a second declaration: shares the type, not the colour
        IMAGE_AGAIN = SocketType("IMAGE", "#000000")  # the engine's own types keep their colour
        @node
        class UseWidget:
            inputs = [Input("widget", "WIDGET_T")]
            outputs = [Output("INT", INT)]
            def run(self, ctx, widget):
                return 1
    """)
    registry = default_registry(plugins)
    assert not registry.problems, registry.problems
    assert registry.type_color("WIDGET_T") == "#123456" and registry.type_color("IMAGE") == "#64b5f6"
    assert registry.type_color("GADGET_T") == "#abcdef"
    assert "WIDGET_T" not in common_types() and registry.type_color("NOBODY_DECLARED") is None
    env = Environment(registry=registry, folders=Folders(tmp_path))
    use = registry.get("UseWidget").schema(env)
    assert use["inputs"][0]["color"] == "#123456" and use["outputs"][0]["color"] == "#7fb069"  # INT
    assert registry.get("UseWidget").inputs[0].type.accepts(registry.get("MakeWidget").outputs[0].type)


def test_pack_types_are_not_the_engines(builtin_registry, tmp_path):
    """GAN and DISCRIMINATOR belong to the gan pack; the engine keeps only the shared vocabulary."""
    import nodegraph
    from nodegraph.environment import Environment
    from nodegraph.folders import Folders
    from nodegraph.types import common_types

    assert not {"GAN", "DISCRIMINATOR", "SCORES"} & set(common_types()) and not hasattr(nodegraph, "GAN")
    assert builtin_registry.type_color("GAN") == "#ff8a65"
    schema = builtin_registry.get("GANSample").schema(Environment(registry=builtin_registry, folders=Folders(tmp_path)))
    assert schema["inputs"][0] == {"name": "gan", "type": "GAN", "required": True, "widget": False, "color": "#ff8a65"}
