"""A ComfyUI pack written against the V3 API (comfy_api.latest), as packs that moved to it are:
an async entry point, io.Schema declarations, classmethod execute, NodeOutput with ui helpers."""
from comfy_api.latest import ComfyExtension, io, ui


class TestV3Tint(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TestV3Tint", display_name="Tint (V3 test)", category="test_pack/v3",
            description="Multiplies one channel of an image.",
            inputs=[io.Image.Input("image"),
                    io.Combo.Input("channel", options=["red", "green", "blue"], default="red"),
                    io.Float.Input("factor", default=0.5, min=0.0, max=2.0, step=0.25),
                    io.Mask.Input("mask", optional=True)],
            outputs=[io.Image.Output(display_name="tinted"), io.Int.Output("width")],
            hidden=[io.Hidden.unique_id])

    @classmethod
    def execute(cls, image, channel, factor, mask=None) -> io.NodeOutput:
        out = image.clone()
        index = ["red", "green", "blue"].index(channel)
        weight = factor if mask is None else 1 + (factor - 1) * mask
        out[..., index] = (out[..., index] * weight).clamp(0, 1)
        return io.NodeOutput(out, image.shape[2], ui=ui.PreviewText(f"{cls.hidden.unique_id}:{channel}"))


class TestV3Describe(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="TestV3Describe", category="test_pack/v3", is_output_node=True,
                         inputs=[io.Image.Input("image"), io.String.Input("label", default="img", multiline=True),
                                 io.Boolean.Input("preview", default=False)])

    @classmethod
    async def execute(cls, image, label, preview):  # ComfyUI allows async execute
        shown = ui.PreviewImage(image, cls=cls) if preview else ui.PreviewText(f"{label}: {tuple(image.shape)}")
        return io.NodeOutput(ui=shown)

    @classmethod
    def fingerprint_inputs(cls, image, label, preview):
        return label


class V3Extension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [TestV3Tint, TestV3Describe]


async def comfy_entrypoint() -> V3Extension:
    return V3Extension()
