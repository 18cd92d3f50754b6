"""MODEL, CLIP and VAE values as ComfyUI packs see them (ModelPatcher, comfy.sd.CLIP, comfy.sd.VAE).

The engine imports no pack, so the pack that makes these values (nodes/diffusion) offers its ComfyUI
surface with nodegraph.provide("comfy.models", ...): wrap(value, ctx) / unwrap(value), its sampling
functions (comfy.samplers, comfy.sample, nodes.common_ksampler, latent_preview) and loaders (comfy.sd).
The V1 adapter wraps what a pack node receives and unwraps what it returns; our core nodes called by
a pack (nodes.KSampler().sample(...)) do the reverse. Without that pack the values pass unchanged and
the modules' sampling names explain that they need it.
"""
from __future__ import annotations

from typing import Any

from ..providers import provided
from . import runtime

SERVICE = "comfy.models"


class NoModelSurface(AttributeError):
    """A ComfyUI model function was called, but no loaded pack offers the model surface."""


def service() -> Any:
    found = provided(SERVICE)
    if found is None:
        pack = runtime.calling_pack()
        who = f"pack {pack!r}" if pack else "a ComfyUI pack"
        raise NoModelSurface(f"{who} uses ComfyUI's model functions (comfy.samplers / comfy.sample / comfy.sd), "
                             "which need nodegraph's diffusion pack (nodes/diffusion), and it is not loaded")
    return found


def wrap(value: Any, ctx) -> Any:
    found = provided(SERVICE)
    if found is None:
        return value
    if isinstance(value, list):
        return [found.wrap(v, ctx) for v in value]
    return found.wrap(value, ctx)


def unwrap(value: Any) -> Any:
    found = provided(SERVICE)
    if found is None:
        return value
    if isinstance(value, list):
        return [found.unwrap(v) for v in value]
    return found.unwrap(value)


def current_ctx():
    current = runtime.running()
    if current is None:
        raise RuntimeError("ComfyUI's model functions can only be called while a node runs")
    return current.ctx
