"""ComfyUI's model code (comfy.ldm.*, comfy.taesd.*), which packs that patch ComfyUI's own model classes import at module
level. nodegraph's models are not ComfyUI's classes, so those patches cannot apply; what is provided:

- comfy.ldm.modules.attention: the attention functions as ComfyUI defines them for PyTorch's SDPA
  (attention_pytorch, and optimized_attention / optimized_attention_masked / attention_basic, which
  ComfyUI picks from its backends and here are the same SDPA call) and wrap_attn, whose
  transformer_options["optimized_attention_override"] hook they honour;
- comfy.ldm.flux.math.apply_rope (rotary embedding with Flux's [.., 2, 2] frequency matrices);
- every other name of the modules in MODULES imports as a class that fails, naming itself, when it is
  instantiated or read (ComfyUI's model classes such as comfy.ldm.lumina.model.FeedForward), so one
  node of a pack that needs them fails instead of the whole pack's import.
"""
from __future__ import annotations

import functools
import sys
import types

import torch
import torch.nn.functional as F

from ..surface import UnsupportedComfyFeature, unsupported

MODULES = ("comfy.ldm", "comfy.ldm.modules", "comfy.ldm.modules.attention", "comfy.ldm.modules.diffusionmodules",
           "comfy.ldm.modules.diffusionmodules.openaimodel", "comfy.ldm.flux", "comfy.ldm.flux.math",
           "comfy.ldm.flux.model", "comfy.ldm.flux.layers", "comfy.ldm.lumina", "comfy.ldm.lumina.model",
           "comfy.ldm.lightricks", "comfy.ldm.lightricks.model", "comfy.ldm.wan", "comfy.ldm.wan.model",
           "comfy.ldm.minimax", "comfy.ldm.minimax.model", "comfy.ldm.hunyuan_video", "comfy.ldm.hunyuan_video.model",
           "comfy.taesd", "comfy.taesd.taesd", "comfy.taesd.taehv")


def wrap_attn(func):
    """ComfyUI's decorator: transformer_options["optimized_attention_override"](func, *args, **kwargs) replaces
    the call when set, once per call chain (an override calling func again runs it)."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if "_inside_attn_wrapper" in kwargs:
            return func(*args, **kwargs)
        kwargs["_inside_attn_wrapper"] = True
        override = (kwargs.get("transformer_options") or {}).get("optimized_attention_override")
        if override is not None:
            return override(func, *args, **kwargs)
        return func(*args, **kwargs)
    return wrapper


@wrap_attn
def attention_pytorch(q, k, v, heads, mask=None, attn_precision=None, skip_reshape=False, skip_output_reshape=False,
                      **kwargs):
    """Multi-head attention by SDPA. q, k, v are [B, N, heads * dim] (or [B, heads, N, dim] with skip_reshape);
    a mask [N, M] / [B, N, M] / [B, heads, N, M] is boolean or additive. Out: [B, N, heads * dim], or
    [B, heads, N, dim] with skip_output_reshape."""
    if skip_reshape:
        b, _, _, dim_head = q.shape
    else:
        b, _, dim_head = q.shape
        dim_head //= heads
        q, k, v = (t.view(b, -1, heads, dim_head).transpose(1, 2) for t in (q, k, v))
    if mask is not None:
        while mask.ndim < 4:  # batch, then heads
            mask = mask.unsqueeze(0 if mask.ndim == 2 else 1)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False)
    if skip_output_reshape:
        return out
    return out.transpose(1, 2).reshape(b, -1, heads * dim_head)


attention_basic = optimized_attention = optimized_attention_masked = attention_pytorch


def optimized_attention_for_device(device=None, mask=False, small_input=False):
    return attention_pytorch


def apply_rope1(x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    """x's consecutive pairs rotated by freqs_cis [..., 2, 2] (the rows of each 2x2 rotation)."""
    pairs = x.to(dtype=freqs_cis.dtype).reshape(*x.shape[:-1], -1, 1, 2)
    out = freqs_cis[..., 0] * pairs[..., 0] + freqs_cis[..., 1] * pairs[..., 1]
    return out.reshape(*x.shape).type_as(x)


def apply_rope(xq: torch.Tensor, xk: torch.Tensor, freqs_cis: torch.Tensor):
    return apply_rope1(xq, freqs_cis), apply_rope1(xk, freqs_cis)


PROVIDED = {
    "comfy.ldm.modules.attention": {
        "wrap_attn": wrap_attn, "attention_pytorch": attention_pytorch, "attention_basic": attention_basic,
        "optimized_attention": optimized_attention, "optimized_attention_masked": optimized_attention_masked,
        "optimized_attention_for_device": optimized_attention_for_device},
    "comfy.ldm.flux.math": {"apply_rope": apply_rope, "apply_rope1": apply_rope1},
}


class _ModelInternal(type):
    """The metaclass of a ComfyUI model name nodegraph does not have: subclassing works (packs subclass at
    import), making one or reading from it raises the compatibility error."""

    def __call__(cls, *args, **kwargs):
        raise cls._miss()

    def __getattr__(cls, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise cls._miss()


def _not_provided(module: str, name: str) -> type:
    def miss(_cls=None) -> UnsupportedComfyFeature:
        try:
            unsupported(module)(name)
        except UnsupportedComfyFeature as exc:
            return UnsupportedComfyFeature(f"{exc} (ComfyUI's model code: nodegraph's models are not ComfyUI's "
                                           "classes)")
        raise AssertionError("unreachable")

    return _ModelInternal(name, (), {"_miss": staticmethod(miss), "__module__": module})


def _module(name: str) -> types.ModuleType:
    module = types.ModuleType(name, f"ComfyUI's {name} (see nodegraph.comfy_compat.comfy.model_code)")
    module.__path__ = []
    module.__dict__.update(PROVIDED.get(name, {}))

    def __getattr__(attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        if f"{name}.{attr}" in MODULES:
            raise AttributeError(attr)  # a submodule not imported yet: the import system loads it
        value = _not_provided(name, attr)
        setattr(module, attr, value)
        return value

    module.__getattr__ = __getattr__
    return module


def install() -> None:
    """The modules in MODULES into sys.modules (those not already there)."""
    for name in MODULES:
        if name not in sys.modules:  # parents come first in MODULES
            sys.modules[name] = _module(name)
        parent, _, child = name.rpartition(".")
        setattr(sys.modules[parent], child, sys.modules[name])
