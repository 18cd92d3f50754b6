import hashlib
import os

import torch

import comfy.utils
import folder_paths
from nodes import MAX_RESOLUTION


class AnyType(str):
    """The wildcard trick many packs use: a type string that equals every other."""

    def __ne__(self, other):
        return False


any_type = AnyType("*")


class TestImageListFromBatch:
    """Split a batch into a list: downstream nodes run once per image."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE",)
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "split"
    CATEGORY = "test_pack/image"

    def split(self, images):
        return ([images[i:i + 1] for i in range(images.shape[0])],)


class TestImageBatchFromList:
    """Join a list back into one batch; every input arrives as a list (INPUT_IS_LIST)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "reverse": ("BOOLEAN", {"default": False})}}

    INPUT_IS_LIST = True
    RETURN_TYPES = ("IMAGE", "INT")
    RETURN_NAMES = ("images", "count")
    FUNCTION = "join"
    CATEGORY = "test_pack/image"

    def join(self, images, reverse):
        assert isinstance(reverse, list), "INPUT_IS_LIST: widget values arrive as lists too"
        items = list(reversed(images)) if reverse[0] else list(images)
        bar = comfy.utils.ProgressBar(len(items))
        for _ in items:
            bar.update(1)
        return (torch.cat(items, dim=0), len(items))


class TestImageBrightness:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE", {"tooltip": "the image to scale"}),
            "factor": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 4.0, "step": 0.05, "round": 0.01}),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "apply"
    CATEGORY = "test_pack/image"
    DESCRIPTION = "Multiply the pixels by a factor, clamped to 0..1."

    def apply(self, image, factor):
        return ((image * factor).clamp(0, 1),)


class TestLoadText:
    """Reads a text file of the input folder: IS_CHANGED hashes it, VALIDATE_INPUTS checks it exists."""

    @classmethod
    def INPUT_TYPES(cls):
        files = sorted(f for f in os.listdir(folder_paths.get_input_directory()) if f.endswith(".txt")) \
            if os.path.isdir(folder_paths.get_input_directory()) else []
        return {"required": {"file": (files,)}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "load"
    CATEGORY = "test_pack/text"

    def load(self, file):
        with open(folder_paths.get_annotated_filepath(file), encoding="utf-8") as f:
            return (f.read(),)

    @classmethod
    def IS_CHANGED(cls, file):
        with open(folder_paths.get_annotated_filepath(file), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    @classmethod
    def VALIDATE_INPUTS(cls, file):
        if not folder_paths.exists_annotated_filepath(file):
            return f"Invalid text file: {file}"
        return True


class TestShowText:
    """An output node: UI text, and the hidden inputs ComfyUI fills in."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"forceInput": True})},
                "hidden": {"unique_id": "UNIQUE_ID", "prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    RETURN_TYPES = ("STRING",)
    OUTPUT_NODE = True
    FUNCTION = "show"
    CATEGORY = "test_pack/text"

    def show(self, text, unique_id=None, prompt=None, extra_pnginfo=None):
        node_types = sorted({entry["class_type"] for entry in (prompt or {}).values()})
        return {"ui": {"text": [text], "unique_id": [unique_id], "prompt_types": node_types},
                "result": (text.upper(),)}


class TestPassAny:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (any_type,)}}

    RETURN_TYPES = (any_type,)
    FUNCTION = "run"
    CATEGORY = "test_pack/utils"

    def run(self, value):
        return (value,)


class TestResolution:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"width": ("INT", {"default": 64, "min": 8, "max": MAX_RESOLUTION, "step": 8})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "test_pack/utils"

    def run(self, width):
        return (width,)


class TestUpscale:
    """comfy.utils.common_upscale as packs call it: [B,C,H,W] after a movedim."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "method": (["nearest-exact", "bilinear", "area", "bicubic", "lanczos"],),
                             "scale": ("INT", {"default": 2, "min": 1, "max": 8})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "test_pack/image"

    def run(self, image, method, scale):
        samples = image.movedim(-1, 1)
        out = comfy.utils.common_upscale(samples, samples.shape[-1] * scale, samples.shape[-2] * scale, method, "disabled")
        return (out.movedim(1, -1),)


IMAGE_MAPPINGS = {
    "TestImageListFromBatch": TestImageListFromBatch, "TestImageBatchFromList": TestImageBatchFromList,
    "TestImageBrightness": TestImageBrightness, "TestLoadText": TestLoadText, "TestShowText": TestShowText,
    "TestPassAny": TestPassAny, "TestResolution": TestResolution, "TestUpscale": TestUpscale,
}
IMAGE_NAMES = {"TestImageBrightness": "Image Brightness (test)", "TestShowText": "Show Text (test)"}
