"""Test pack: what popular public packs reach for in ComfyUI beyond the basics, each the way those
packs do it (written here, no pack code): KJNodes (comfy_types IO, state_dict_prefix_replace, a static
folder through PromptServer.instance.app, binary preview events), VideoHelperSuite
(PromptServer.instance.prompt_queue at import, FolderOfImages), rgthree (`import execution`), WAS Node
Suite and Comfyroll (comfy.diffusers_convert, comfy_extras.chainner_models), ComfyUI_essentials
(common_upscale with keyword arguments)."""
import io
from pathlib import Path

import comfy.diffusers_convert  # noqa: F401  (imported at module level, used by a model node only)
import comfy.model_management
import comfy.utils
import execution  # noqa: F401
import server
from aiohttp import web
from comfy.comfy_types.node_typing import IO, CheckLazyMixin
from comfy.k_diffusion.utils import FolderOfImages
from comfy_extras import nodes_mask
from comfy_extras.chainner_models import model_loading  # noqa: F401
from comfy_extras.nodes_latent import LatentBatch  # noqa: F401  (rgthree's power_puter)
from PIL import Image
from nodes import ImageInvert
from server import BinaryEventTypes, PromptServer

prompt_queue = server.PromptServer.instance.prompt_queue  # at import, as VideoHelperSuite does
OOM = comfy.model_management.OOM_EXCEPTION

if not PromptServer.instance.app.router.frozen:
    PromptServer.instance.app.add_routes([web.static("/public_surface_static", (Path(__file__).parent / "static").as_posix())])


async def _count(request):
    return server.web.json_response({"count": 3})  # ComfyUI's server module exposes aiohttp's web


PromptServer.instance.app.router.add_get("/public_surface/count", _count)


class PublicResize:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": (IO.IMAGE,), "width": (IO.INT, {"default": 8, "min": 1}),
                             "height": (IO.INT, {"default": 6, "min": 1})}}

    RETURN_TYPES = (IO.IMAGE,)
    FUNCTION = "resize"
    CATEGORY = "public_surface"

    def resize(self, image, width, height):
        out = comfy.utils.common_upscale(image.movedim(-1, 1), width, height, upscale_method="bilinear", crop="center")
        return (out.movedim(1, -1),)


class PublicPreview:
    """Sends its image as ComfyUI's binary preview events, both kinds."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}

    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "preview"
    CATEGORY = "public_surface"

    def preview(self, image):
        pil = Image.fromarray((image[0].clamp(0, 1) * 255).byte().numpy())
        srv = PromptServer.instance
        srv.send_sync(BinaryEventTypes.UNENCODED_PREVIEW_IMAGE, ("JPEG", pil, None), srv.client_id)
        encoded = io.BytesIO()
        encoded.write((2).to_bytes(4, "big"))  # 2: PNG
        pil.save(encoded, format="PNG")
        srv.send_sync(BinaryEventTypes.PREVIEW_IMAGE, encoded.getvalue(), srv.client_id)
        return {}


class PublicQueueInfo:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"tag": ("STRING", {"default": "x"})}}

    RETURN_TYPES = ("INT", "STRING", "STRING")
    FUNCTION = "info"
    CATEGORY = "public_surface"

    def info(self, tag):
        [(number, prompt_id, prompt, extra, outputs, sensitive)] = prompt_queue.currently_running.values()
        kinds = ",".join(sorted(node["class_type"] for node in prompt.values()))
        return (prompt_queue.get_tasks_remaining(), prompt_id, kinds)


class PublicRequeue:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "requeue"
    CATEGORY = "public_surface"

    def requeue(self):
        prompt_queue.put((0, "again", {}, {}, [], {}))
        return {}


class PublicComposite(nodes_mask.ImageCompositeMasked):
    """A comfy_extras node class reused, as rgthree's SDXL prompts reuse CLIPTextEncodeSDXL."""
    CATEGORY = "public_surface"


class PublicRemember:
    """An output node without outputs that returns its input anyway, as WAS' Text Add Tokens does."""
    SEEN = []

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": "a:b"})}}

    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "remember"
    CATEGORY = "public_surface"

    def remember(self, text):
        PublicRemember.SEEN.append(text)
        return text


class AlwaysEqual(str):
    """The "*" type many packs declare (Crystools, pythongosssss): equal to every type name."""

    def __eq__(self, other) -> bool:
        return True

    def __ne__(self, other) -> bool:
        return False


any_type = AlwaysEqual("*")


class PublicPassAny:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (any_type, {})}}

    RETURN_TYPES = (any_type,)
    FUNCTION = "pass_on"
    CATEGORY = "public_surface"

    def pass_on(self, value):
        return (value,)


class PublicStep:
    """An INT declared with float numbers, as Comfyroll's schedulers do (ComfyUI casts with int())."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"start": ("INT", {"default": 1.0, "min": 0, "max": 10.0}),
                             "scale": ("FLOAT", {"default": 2, "min": 0, "max": 10})}}

    RETURN_TYPES = ("INT", "FLOAT")
    FUNCTION = "step"
    CATEGORY = "public_surface"

    def step(self, start, scale):
        return (start + 1, scale * 1.5)


class PublicFolderCount(CheckLazyMixin):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"folder": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "count"
    CATEGORY = "public_surface"

    def count(self, folder):
        return (len(FolderOfImages(folder)),)


class PublicInvertWithNote(ImageInvert):
    """A core node subclassed with one more output, as Custom-Scripts does with LoraLoader."""
    RETURN_TYPES = (*ImageInvert.RETURN_TYPES, "STRING")
    RETURN_NAMES = (*getattr(ImageInvert, "RETURN_NAMES", ImageInvert.RETURN_TYPES), "note")
    FUNCTION = "invert_with_note"

    def invert_with_note(self, **kwargs):
        return (*getattr(super(), ImageInvert.FUNCTION)(**kwargs), "inverted")


NODE_CLASS_MAPPINGS = {"PublicPassAny": PublicPassAny, "PublicStep": PublicStep, "PublicRemember": PublicRemember, "PublicComposite": PublicComposite, "PublicInvertWithNote": PublicInvertWithNote,
                       "PublicResize": PublicResize, "PublicPreview": PublicPreview, "PublicQueueInfo": PublicQueueInfo,
                       "PublicRequeue": PublicRequeue, "PublicFolderCount": PublicFolderCount}
