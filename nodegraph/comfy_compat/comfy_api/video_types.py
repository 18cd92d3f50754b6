"""ComfyUI 0.8's video names in comfy_api.latest (Types.VideoCodec / VideoContainer / VideoComponents,
InputImpl.VideoFromFile / VideoFromComponents). The names and choices are ComfyUI's, so V3 schemas that
list them load; nodegraph has no VIDEO values yet, so making a video (InputImpl) fails naming itself."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from typing import Any, Optional

from ..surface import unsupported


class VideoCodec(str, Enum):
    AUTO = "auto"
    H264 = "h264"

    @classmethod
    def as_input(cls) -> list[str]:
        return [member.value for member in cls]


class VideoContainer(str, Enum):
    AUTO = "auto"
    MP4 = "mp4"

    @classmethod
    def as_input(cls) -> list[str]:
        return [member.value for member in cls]

    @classmethod
    def get_extension(cls, value) -> str:
        """ComfyUI: mp4 for both of its containers (auto means mp4)."""
        return "mp4" if cls(value) in (cls.MP4, cls.AUTO) else ""


@dataclass
class VideoComponents:
    images: Any
    frame_rate: Fraction
    audio: Optional[Any] = None
    metadata: Optional[dict] = None


class _NotProvided:
    """A class attribute whose use names itself (InputImpl.VideoFromFile(...) -> the compatibility error)."""

    def __set_name__(self, owner, name: str) -> None:
        self.name = f"{owner.__name__}.{name}"

    def __get__(self, obj, owner):
        return unsupported("comfy_api.latest")(self.name)


class InputImpl:
    VideoFromFile = _NotProvided()
    VideoFromComponents = _NotProvided()


class Types:
    VideoCodec = VideoCodec
    VideoContainer = VideoContainer
    VideoComponents = VideoComponents
    MESH = _NotProvided()
    VOXEL = _NotProvided()
