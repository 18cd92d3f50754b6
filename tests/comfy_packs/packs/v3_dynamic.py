"""A ComfyUI V3 pack using the dynamic inputs of comfy_api 0.8: io.Autogrow (a growing list of
image sockets image0, image1, ...), io.MultiType (a FLOAT widget that also takes a MASK), io.MatchType
(the output has the type of what is linked) and io.DynamicCombo (the chosen mode adds its inputs)."""
from comfy_api.latest import ComfyExtension, io, ui


class TestV3Average(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        grown = io.Autogrow.TemplatePrefix(io.Image.Input("image"), prefix="image", min=2, max=4)
        return io.Schema(
            node_id="TestV3Average", category="test_pack/v3",
            inputs=[io.Autogrow.Input("images", template=grown),
                    io.MultiType.Input(io.Float.Input("weight", default=1.0, min=0.0, max=4.0), types=[io.Mask])],
            outputs=[io.Image.Output(), io.Int.Output("count")])

    @classmethod
    def execute(cls, images: dict, weight):
        stacked = list(images.values())  # {"image0": ..., "image1": ...} in socket order
        mean = sum(stacked) / len(stacked)
        scale = weight if isinstance(weight, float) else weight[..., None]  # a MASK is [B,H,W]
        return io.NodeOutput((mean * scale).clamp(0, 1), len(stacked))


class TestV3PickFirst(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        template = io.MatchType.Template("T")
        return io.Schema(
            node_id="TestV3PickFirst", category="test_pack/v3",
            inputs=[io.MatchType.Input("a", template=template), io.MatchType.Input("b", template=template),
                    io.Boolean.Input("first", default=True)],
            outputs=[io.MatchType.Output(template=template)])

    @classmethod
    def execute(cls, a, b, first):
        return io.NodeOutput(a if first else b)


class TestV3Adjust(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        mode = io.DynamicCombo.Input("mode", options=[
            io.DynamicCombo.Option("gain", [io.Float.Input("amount", default=2.0, min=0.0, max=8.0)]),
            io.DynamicCombo.Option("offset", [io.Float.Input("shift", default=0.1, min=-1.0, max=1.0),
                                              io.Mask.Input("where", optional=True)]),
        ])
        return io.Schema(node_id="TestV3Adjust", category="test_pack/v3",
                         inputs=[io.Image.Input("image"), mode], outputs=[io.Image.Output()])

    @classmethod
    def execute(cls, image, mode: dict):
        if mode["mode"] == "gain":
            return io.NodeOutput((image * mode["amount"]).clamp(0, 1))
        where = mode.get("where")
        shift = mode["shift"] if where is None else mode["shift"] * where[..., None]
        return io.NodeOutput((image + shift).clamp(0, 1))


class TestV3ShowAny(io.ComfyNode):
    """Shows what reaches an AnyType ("*") input: a link or, as ComfyUI allows, a literal of the prompt."""

    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="TestV3ShowAny", category="test_pack/v3", is_output_node=True,
                         inputs=[io.AnyType.Input("value")])

    @classmethod
    def execute(cls, value):
        shown = f"shape {tuple(value.shape)}" if hasattr(value, "shape") else f"{type(value).__name__} {value!r}"
        return io.NodeOutput(ui=ui.PreviewText(shown))


class TestV3SumVariables(io.ComfyNode):
    """Named grown inputs (Autogrow.TemplateNames) of a MultiType with no widget of its own, as KJNodes'
    expression node declares its variables."""

    @classmethod
    def define_schema(cls):
        var = io.MultiType.Input("var", [io.Int, io.Float, io.Boolean], optional=True)
        return io.Schema(node_id="TestV3SumVariables", category="test_pack/v3", is_output_node=True,
                         inputs=[io.Autogrow.Input("variables", template=io.Autogrow.TemplateNames(
                             input=var, names=["a", "b", "c"], min=2))],
                         outputs=[io.Float.Output("sum")])

    @classmethod
    def execute(cls, variables: dict):
        total = float(sum(variables.values()))
        return io.NodeOutput(total, ui=ui.PreviewText(f"{sorted(variables)} {total}"))


class DynamicExtension(ComfyExtension):
    async def get_node_list(self):
        return [TestV3Average, TestV3PickFirst, TestV3Adjust, TestV3ShowAny, TestV3SumVariables]


async def comfy_entrypoint():
    return DynamicExtension()
