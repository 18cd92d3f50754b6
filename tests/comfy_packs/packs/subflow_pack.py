"""Test pack (a single file): subflow nodes that expand into built-in nodes with GraphBuilder, as
packs ship "macro" nodes: ImageInvert -> ImageBlend -> SaveImage (an output node inside the
expansion) and ImageScaleBy. A V1 node, and the same idea in V3 (io.NodeOutput(expand=...))."""
from comfy_api.latest import io
from comfy_execution.graph_utils import GraphBuilder


class TestSubflowInvertBlend:
    @classmethod
    def INPUT_TYPES(cls):
        # options only ComfyUI's frontend reads (round, display, placeholder, dynamicPrompts): /object_info keeps them
        return {"required": {"image": ("IMAGE",),
                             "factor": ("FLOAT", {"default": 0.25, "min": 0.0, "max": 1.0, "step": 0.05,
                                                  "round": 0.01, "display": "slider"}),
                             "filename_prefix": ("STRING", {"default": "subflow", "placeholder": "file name prefix",
                                                            "dynamicPrompts": False,
                                                            "tooltip": "where the blend is saved"})}}

    RETURN_TYPES = ("IMAGE", "IMAGE")
    RETURN_NAMES = ("doubled", "blended")
    OUTPUT_TOOLTIPS = ("the blend at twice the size", "the blend")
    DESCRIPTION = "Blends an image with its inverse, saves it, and doubles it."
    FUNCTION = "expand"
    CATEGORY = "test_pack/subflow"

    def expand(self, image, factor, filename_prefix):
        graph = GraphBuilder()
        inverted = graph.node("ImageInvert", image=image)  # a computed value as the input
        blended = graph.node("ImageBlend", image1=image, image2=inverted.out(0), blend_factor=factor,
                             blend_mode="normal")
        graph.node("SaveImage", images=blended.out(0), filename_prefix=filename_prefix)
        doubled = graph.node("ImageScaleBy", image=blended.out(0), upscale_method="nearest-exact", scale_by=2.0)
        return {"result": (doubled.out(0), blended.out(0)), "expand": graph.finalize()}


class TestSubflowV3Invert(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="TestSubflowV3Invert", category="test_pack/subflow", enable_expand=True,
                         inputs=[io.Image.Input("image")], outputs=[io.Image.Output()])

    @classmethod
    def execute(cls, image):
        graph = GraphBuilder()
        inverted = graph.node("ImageInvert", image=image)
        return io.NodeOutput(inverted.out(0), expand=graph.finalize())


NODE_CLASS_MAPPINGS = {"TestSubflowInvertBlend": TestSubflowInvertBlend, "TestSubflowV3Invert": TestSubflowV3Invert}
