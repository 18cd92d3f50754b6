"""Test pack: the names KJNodes and the Impact Pack reach for at import (found by bench/comfy_packs_try.py),
imported the same way, each used by a small node. Written here; no pack code."""
import os

import torch
from torchvision.transforms import CenterCrop

import folder_paths

import comfy.samplers  # noqa: F401
from comfy.cli_args import LatentPreviewMethod, args
from comfy.ldm.flux.math import apply_rope
from comfy.ldm.lumina.model import FeedForward
from comfy.ldm.modules.attention import attention_pytorch, optimized_attention, wrap_attn
from comfy.patcher_extension import CallbacksMP, WrappersMP
from comfy.sampler_helpers import prepare_mask
from comfy.samplers import CFGGuider, sampling_function  # noqa: F401
from comfy_api.latest import InputImpl, Types, io
from comfy_extras.nodes_mask import composite
from latent_preview import TAESD, Latent2RGBPreviewer, TAESDPreviewerImpl  # noqa: F401
from server import PromptServer

COMFY_PATH = os.path.dirname(folder_paths.__file__)  # ComfyUI's folder, as packs find it (then write web/...)
WRAPPER_KINDS = (WrappersMP.OUTER_SAMPLE, CallbacksMP.ON_CLONE)


def fill_wildcard(json_data):
    """An on-prompt handler (as wildcard packs register): fills a marker in STRING inputs."""
    for node in (json_data.get("prompt") or {}).values():
        for key, value in list(node.get("inputs", {}).items()):
            if value == "__finish_wildcard__":
                node["inputs"][key] = "filled by the handler"
    return json_data


PromptServer.instance.add_on_prompt_handler(fill_wildcard)


class _Node:
    CATEGORY = "test_pack/finish"


class FinishCenterCrop(_Node):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "height": ("INT", {"default": 2}), "width": ("INT", {"default": 2})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "crop"

    def crop(self, image, height, width):
        return (CenterCrop((height, width))(image.movedim(-1, 1)).movedim(1, -1),)


class FinishComposite(_Node):
    """ImageCompositeMasked's call of nodes_mask.composite (multiplier 1, channels first)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"destination": ("IMAGE",), "source": ("IMAGE",), "x": ("INT", {"default": 0}),
                             "y": ("INT", {"default": 0})},
                "optional": {"mask": ("MASK",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "paste"

    def paste(self, destination, source, x, y, mask=None):
        out = composite(destination.clone().movedim(-1, 1), source.movedim(-1, 1), x, y, mask, 1, False)
        return (out.movedim(1, -1),)


class FinishArgs(_Node):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("STRING", "BOOLEAN", "STRING", "INT")
    FUNCTION = "read"

    def read(self):
        assert isinstance(args.preview_method, LatentPreviewMethod)
        return args.output_directory, args.disable_metadata, args.preview_method.value, args.port


class FinishEcho(_Node):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "echo"
    OUTPUT_NODE = True

    def echo(self, text):
        return {"ui": {"text": [text]}, "result": (text,)}


class FinishModelInternal(_Node):
    """Makes a ComfyUI model class nodegraph does not have: fails naming it."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "make"

    def make(self):
        FeedForward(8, 16, 4, None)
        return (0,)


class FinishVideoSchema(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="FinishVideoSchema", category="test_pack/finish",
                         inputs=[io.Combo.Input("format", options=Types.VideoContainer.as_input(), default="auto")],
                         outputs=[io.String.Output()])

    @classmethod
    def execute(cls, format):
        return io.NodeOutput(Types.VideoContainer.get_extension(format))


NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls in (FinishCenterCrop, FinishComposite, FinishArgs, FinishEcho,
                                                      FinishModelInternal, FinishVideoSchema)}
__all__ = ["NODE_CLASS_MAPPINGS", "attention_pytorch", "optimized_attention", "wrap_attn", "apply_rope",
           "prepare_mask", "InputImpl", "Latent2RGBPreviewer", "TAESDPreviewerImpl", "TAESD", "CFGGuider"]
