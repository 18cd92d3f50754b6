"""ComfyUI's `comfy_api.latest`: ComfyExtension, io, ui (and their IO / UI aliases).

A V3 pack's module defines `comfy_entrypoint()` (often async) returning a ComfyExtension whose
`get_node_list()` (often async) lists io.ComfyNode classes; nodegraph.comfy_compat.v3 loads them.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

from . import io, ui
from .video_types import InputImpl, Types


class ComfyExtension(ABC):
    async def on_load(self) -> None:
        """Called once when the pack loads, before get_node_list."""

    @abstractmethod
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        """The pack's node classes."""


IO = io
UI = ui

__all__ = ["ComfyExtension", "io", "IO", "ui", "UI", "InputImpl", "Types"]
