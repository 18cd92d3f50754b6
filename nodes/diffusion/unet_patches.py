"""Per-call patches inside a diffusers U-Net, as ComfyUI's transformer_options carry them into its own U-Net.

A MODEL handle's model_options may hold ComfyUI's "transformer_options":

    {"patches": {"output_block_patch": [fn(h, hsp, transformer_options) -> (h, hsp), ...],
                 "attn1_patch": [fn(n, context, value, extra_options) -> (n, context, value), ...],
                 "attn2_patch": [...]},
     "patches_replace": {"attn1": {("middle", 0): fn(q, k, v, extra_options) -> out, ...},
                         "attn2": {...}}}

and "patches": {"middle_patch": [fn(x, extra_options) -> x]} (GLIGEN's fusers): run on every transformer
block's residual stream between its self-attention and its cross-attention; extra_options carries
"transformer_index", the spatial transformer's position in the forward pass (ComfyUI's counter).

Block ids are ComfyUI's: ("input", i) counts conv_in, every down resnet and every downsampler;
("middle", 0) is the middle block; ("output", i) counts the up resnets. A replacement keyed
(name, id, index) applies to one transformer block of that block, (name, id) to all of them. An
output-block patch sees the backbone features h and the skip features hsp just before they are
concatenated (ControlNet residuals already added to hsp), at every output block. An attn1/attn2 patch
(hypernetworks) changes the attention's inputs before the q/k/v projections: the normed hidden states, the
states keys are made from and the states values are made from (for attn1 all three start as the normed
hidden states, for attn2 the last two as the text context), as in ComfyUI's BasicTransformerBlock.

The shared U-Net is never re-patched per handle: the first patched call installs hooks that do
nothing unless a call is active in the current context (`active`), so unpatched calls, other
threads and other handles of the same module run the plain U-Net.
"""
from __future__ import annotations

import contextvars
import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F

__all__ = ["active", "attention", "has_patches", "unet_sites"]

BlockKey = tuple  # ("input" | "middle" | "output", id)


@dataclass
class _Call:
    options: dict  # the call's transformer_options
    output_block_patches: list[Callable]
    attn_replace: dict[str, dict[tuple, Callable]]
    attn_patches: dict[str, list[Callable]]  # "attn1" / "attn2" -> input patches
    middle_patches: list[Callable] = field(default_factory=list)
    residuals: dict[int, torch.Tensor] = field(default_factory=dict)  # transformer block input, by id(block)


_ACTIVE: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("unet_patches", default=None)


@dataclass
class UNetSites:
    """Where ComfyUI's patches act in one diffusers U-Net."""

    # every up-block resnet: (module, channels of the backbone part of its input, ("output", id))
    skips: list[tuple[torch.nn.Module, int, BlockKey]] = field(default_factory=list)
    # every transformer block: (module, block key, index inside its block's transformer)
    transformer_blocks: list[tuple[torch.nn.Module, BlockKey, int]] = field(default_factory=list)
    # every transformer block's spatial transformer index in forward order (ComfyUI's "transformer_index")
    transformer_index: dict[int, int] = field(default_factory=dict)


def unet_sites(unet: torch.nn.Module) -> UNetSites:
    """Walk a UNet2DConditionModel in ComfyUI's block numbering (the skip stack of its forward pass)."""
    sites = UNetSites()
    skip_channels = [unet.conv_in.out_channels]
    input_id = 1

    def add_transformers(attentions, index: int, key: BlockKey) -> None:
        if attentions is not None and index < len(attentions):
            spatial = len(set(sites.transformer_index.values()))
            for i, block in enumerate(attentions[index].transformer_blocks):
                sites.transformer_blocks.append((block, key, i))
                sites.transformer_index[id(block)] = spatial

    for down in unet.down_blocks:
        for j, resnet in enumerate(down.resnets):
            skip_channels.append(resnet.out_channels)
            add_transformers(getattr(down, "attentions", None), j, ("input", input_id))
            input_id += 1
        if down.downsamplers:
            skip_channels.append(down.downsamplers[0].out_channels)
            input_id += 1
    for j in range(len(getattr(unet.mid_block, "attentions", None) or [])):
        add_transformers(unet.mid_block.attentions, j, ("middle", 0))
    output_id = 0
    for up in unet.up_blocks:
        for j, resnet in enumerate(up.resnets):
            skip = skip_channels.pop()
            sites.skips.append((resnet, resnet.in_channels - skip, ("output", output_id)))
            add_transformers(getattr(up, "attentions", None), j, ("output", output_id))
            output_id += 1
    return sites


_PATCH_KINDS = ("output_block_patch", "attn1_patch", "attn2_patch", "middle_patch")


def has_patches(options: dict | None) -> bool:
    return bool(options) and bool(any(options.get("patches", {}).get(kind) for kind in _PATCH_KINDS)
                                  or any(options.get("patches_replace", {}).values()))


@contextmanager
def active(unet: torch.nn.Module, options: dict) -> Iterator[None]:
    """Run the U-Net's forward passes inside this block with the options' patches."""
    _install(unet)
    patches = options.get("patches", {})
    call = _Call(options, list(patches.get("output_block_patch", [])),
                 {name: dict(table) for name, table in options.get("patches_replace", {}).items()},
                 {name: list(patches.get(f"{name}_patch", [])) for name in ("attn1", "attn2")},
                 list(patches.get("middle_patch", [])))
    token = _ACTIVE.set(call)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int,
              mask: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-head attention on [B, T, heads * d] projections (ComfyUI's optimized_attention), by SDPA."""
    b, _, inner = q.shape
    d = inner // heads
    q, k, v = (t.view(b, -1, heads, d).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out.transpose(1, 2).reshape(b, -1, heads * d)


# --- hooks ------------------------------------------------------------------------------------------

_installed: "weakref.WeakKeyDictionary[torch.nn.Module, UNetSites]" = weakref.WeakKeyDictionary()
_install_lock = threading.Lock()


def _install(unet: torch.nn.Module) -> None:
    """Hooks on the up-block resnets and a pass-through processor on every attention (once per U-Net;
    processors are wrapped again if something replaced them since)."""
    with _install_lock:
        sites = _installed.get(unet)
        if sites is None:
            sites = _installed[unet] = unet_sites(unet)
            for resnet, channels, key in sites.skips:
                resnet.register_forward_pre_hook(_skip_hook(channels, key))
            for block, key, index in sites.transformer_blocks:
                if getattr(block, "norm_type", None) == "layer_norm" and block.attn1 is not None:
                    block.norm1.register_forward_pre_hook(_residual_hook(id(block)))
                    block.attn1.register_forward_hook(
                        _middle_hook(id(block), key, index, sites.transformer_index[id(block)]))
        for block, key, index in sites.transformer_blocks:
            for name in ("attn1", "attn2"):
                attn = getattr(block, name, None)
                if attn is not None and not isinstance(attn.processor, PatchableAttnProcessor):
                    attn.set_processor(PatchableAttnProcessor(attn.processor, name, key, index))


def _skip_hook(channels: int, key: BlockKey):
    def hook(module, args):
        call = _ACTIVE.get()
        if call is None or not call.output_block_patches:
            return None
        x = args[0]
        h, hsp = x[:, :channels], x[:, channels:]
        options = {**call.options, "block": key}
        for patch in call.output_block_patches:
            h, hsp = patch(h, hsp, options)
        return (torch.cat([h, hsp], dim=1),) + tuple(args[1:])
    return hook


def _residual_hook(block_id: int):
    """Keeps the transformer block's input (the residual its self-attention output is added to)."""
    def hook(module, args):
        call = _ACTIVE.get()
        if call is not None and call.middle_patches:
            call.residuals[block_id] = args[0]
        return None
    return hook


def _middle_hook(block_id: int, key: BlockKey, index: int, transformer_index: int):
    """Applies the middle patches to x = attn1 output + residual: the patches' change of x is added to the
    attention output, so the block continues with the patched x (a patch that returns x changes nothing)."""
    def hook(module, args, output):
        call = _ACTIVE.get()
        if call is None or not call.middle_patches:
            return None
        residual = call.residuals.pop(block_id)
        x = output + residual
        options = {**call.options, "block": key, "block_index": index, "transformer_index": transformer_index}
        patched = x
        for patch in call.middle_patches:
            patched = patch(patched, options)
        return output + (patched - x)
    return hook


class PatchableAttnProcessor:
    """Runs the wrapped diffusers processor, unless the active call patches or replaces this attention: then
    the input patches run, q, k and v are projected here and the replacement (or plain attention) computes
    the attention (before the output projection)."""

    def __init__(self, inner: Any, name: str, block: BlockKey, index: int) -> None:
        self.inner, self.name, self.block, self.index = inner, name, block, index

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        call = _ACTIVE.get()
        table = call.attn_replace.get(self.name) if call is not None else None
        fn = None
        if table:
            fn = table.get(self.block + (self.index,), table.get(self.block))
        input_patches = call.attn_patches.get(self.name) if call is not None else None
        if fn is None and not input_patches:
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        if (attn.spatial_norm is not None or attn.group_norm is not None or attn.norm_q is not None
                or attn.norm_k is not None or hidden_states.ndim != 3 or attention_mask is not None):
            raise ValueError(f"an {self.name} patch or replacement at {self.block} needs a plain transformer attention "
                             "(no spatial/group/q-k norm, no mask, [B, T, C] input)")
        residual = hidden_states
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if encoder_hidden_states is not None and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        extra = {**call.options, "n_heads": attn.heads, "dim_head": attn.inner_dim // attn.heads,
                 "block": self.block, "block_index": self.index,
                 "attn_precision": torch.float32 if getattr(attn, "upcast_attention", False) else None}
        value = context
        for patch in input_patches or ():
            hidden_states, context, value = patch(hidden_states, context, value, extra)
        q, k, v = attn.to_q(hidden_states), attn.to_k(context), attn.to_v(value)
        out = (fn(q, k, v, extra) if fn is not None else attention(q, k, v, attn.heads)).to(q.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor
