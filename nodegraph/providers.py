"""Services a pack offers the rest of the process by name: the seam between the engine and packs it
must not import.

The engine's ComfyUI layer (nodegraph.comfy_compat) gives ComfyUI packs `comfy.samplers`,
`comfy.sample`, `comfy.sd` and the ModelPatcher / CLIP / VAE surface of the MODEL, CLIP and VAE
values. Only the pack that makes those values (nodes/diffusion) knows how to sample with them, and
the engine imports no pack, so that pack registers its implementation here when it is imported:

    provide("comfy.models", surface)     # in the pack
    provided("comfy.models")             # in comfy_compat: the object, or None when no pack gave one
"""
from __future__ import annotations

from typing import Any

_provided: dict[str, Any] = {}


def provide(name: str, service: Any) -> None:
    """Offer `service` under `name` (a later call replaces it: a pack reloaded in a worker)."""
    _provided[name] = service


def provided(name: str) -> Any:
    return _provided.get(name)
