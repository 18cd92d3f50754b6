"""ComfyUI's `comfy.comfy_types.node_typing` (ComfyUI 0.8): IO, the socket type names as a string
enum, so `IO.IMAGE == "IMAGE"` and a declaration written with IO reads as one written with strings;
ComfyNodeABC / CheckLazyMixin, the bases a V1 node may declare; the TypedDicts packs annotate with."""
from __future__ import annotations

from abc import ABC
from enum import Enum
from typing import TypedDict

from ...surface import unsupported


class StrEnum(str, Enum):
    def __str__(self) -> str:
        return self.value


class IO(StrEnum):
    STRING = "STRING"
    IMAGE = "IMAGE"
    MASK = "MASK"
    LATENT = "LATENT"
    BOOLEAN = "BOOLEAN"
    INT = "INT"
    FLOAT = "FLOAT"
    COMBO = "COMBO"
    CONDITIONING = "CONDITIONING"
    SAMPLER = "SAMPLER"
    SIGMAS = "SIGMAS"
    GUIDER = "GUIDER"
    NOISE = "NOISE"
    CLIP = "CLIP"
    CONTROL_NET = "CONTROL_NET"
    VAE = "VAE"
    MODEL = "MODEL"
    LORA_MODEL = "LORA_MODEL"
    LOSS_MAP = "LOSS_MAP"
    CLIP_VISION = "CLIP_VISION"
    CLIP_VISION_OUTPUT = "CLIP_VISION_OUTPUT"
    STYLE_MODEL = "STYLE_MODEL"
    GLIGEN = "GLIGEN"
    UPSCALE_MODEL = "UPSCALE_MODEL"
    AUDIO = "AUDIO"
    WEBCAM = "WEBCAM"
    POINT = "POINT"
    FACE_ANALYSIS = "FACE_ANALYSIS"
    BBOX = "BBOX"
    SEGS = "SEGS"
    VIDEO = "VIDEO"
    ANY = "*"
    NUMBER = "FLOAT,INT"
    PRIMITIVE = "STRING,FLOAT,INT,BOOLEAN"

    def __ne__(self, other: object) -> bool:
        """ComfyUI's loose type check: "*" matches anything, "A,B" matches either name."""
        if self == "*" or other == "*":
            return False
        if not isinstance(other, str):
            return True
        mine, theirs = frozenset(self.split(",")), frozenset(other.split(","))
        return not (mine <= theirs or theirs <= mine)

    __hash__ = str.__hash__  # defining __ne__ must not make the members unhashable (dict keys in packs)


class InputTypeDict(TypedDict, total=False):
    required: dict
    optional: dict
    hidden: dict


class FileLocator(TypedDict):
    filename: str
    subfolder: str
    type: str


class ComfyNodeABC(ABC):
    """The base ComfyUI offers V1 nodes for type hints: it adds no behaviour."""


class CheckLazyMixin:
    def check_lazy_status(self, **kwargs) -> list[str]:
        """Ask for every input that has not been evaluated yet (None), as ComfyUI's mixin."""
        return [name for name, value in kwargs.items() if value is None]


__getattr__ = unsupported(__name__)
