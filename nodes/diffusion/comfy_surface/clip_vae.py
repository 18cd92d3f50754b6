"""ComfyUI's CLIP and VAE objects (comfy.sd.CLIP / comfy.sd.VAE) over our CLIP and VAE handles.

As with the MODEL, a pack node gets one of these around the handle and what it returns goes back to a
handle; clone() and add_patches never change the handle they came from. Tensors keep ComfyUI's
layouts: IMAGE [B,H,W,C] in 0..1, raw (unscaled) latents [B,C,h,w], results on the CPU.
"""
from __future__ import annotations

from typing import Any

import torch

from nodegraph import ModelHandle

from ..conditioning_nodes import _embedding_dirs
from ..vae_nodes import crop_to_multiple, tiled, vae_decode, vae_encode
from .patcher import _unsupported
from .weight_patches import clip_key_map, comfy_patches, key_patches


class ComfyCLIP:
    """A CLIP handle as comfy.sd.CLIP: tokenize, encode_from_tokens(_scheduled), clone, add_patches ..."""

    def __init__(self, handle: ModelHandle, ctx) -> None:
        self.handle, self.ctx = handle, ctx
        self.layer_idx = handle.info.get("layer_idx")
        self.weight_patches: list = list(handle.patches)

    def clone(self) -> "ComfyCLIP":
        twin = ComfyCLIP(self.handle, self.ctx)
        twin.layer_idx, twin.weight_patches = self.layer_idx, list(self.weight_patches)
        return twin

    def to_handle(self) -> ModelHandle:
        twin = self.handle.clone()
        twin.patches = tuple(self.weight_patches)
        twin.info = {**twin.info, "layer_idx": self.layer_idx}
        return twin

    @property
    def patcher(self) -> "ComfyCLIP":
        return self

    @property
    def cond_stage_model(self) -> torch.nn.Module:
        return self.handle.module

    def clip_layer(self, layer_idx: int) -> None:
        self.layer_idx = int(layer_idx)

    def tokenize(self, text: str, return_word_ids: bool = False, **kwargs: Any) -> dict:
        """{encoder name ("l", "g", "h"): chunks of (token, weight)}, prompt weighting and embeddings as ours."""
        if return_word_ids:
            raise _unsupported("CLIP.tokenize", "return_word_ids")
        return self.handle.module.tokenize(text, _embedding_dirs(self.ctx))

    def encode_from_tokens(self, tokens: dict, return_pooled: bool | str = False, return_dict: bool = False):
        if return_pooled == "unprojected":
            raise _unsupported("CLIP.encode_from_tokens", "return_pooled='unprojected'")
        tokens = {k: [[tuple(t[:2]) for t in chunk] for chunk in chunks] for k, chunks in tokens.items()}
        with self.ctx.devices.use(self.to_handle()) as model, torch.no_grad():
            cond, pooled = model.encode_tokens(tokens, self.layer_idx)
        if return_dict:
            return {"cond": cond, "pooled_output": pooled}
        return (cond, pooled) if return_pooled else cond

    def encode_from_tokens_scheduled(self, tokens: dict, unprojected: bool = False, add_dict: dict | None = None,
                                     show_pbar: bool = True) -> list:
        """A CONDITIONING: [[cond, {"pooled_output": pooled, **add_dict}]] (ComfyUI schedules hooks here; we have none)."""
        if unprojected:
            raise _unsupported("CLIP.encode_from_tokens_scheduled", "unprojected=True")
        out = self.encode_from_tokens(tokens, return_dict=True)
        cond = out.pop("cond")
        return [[cond, {**out, **(add_dict or {})}]]

    def encode(self, text: str) -> torch.Tensor:
        return self.encode_from_tokens(self.tokenize(text))

    def add_patches(self, patches: dict, strength_patch: float = 1.0, strength_model: float = 1.0) -> list:
        own = {k for k, _ in self.handle.module.named_parameters()}
        triples, accepted = comfy_patches(patches, clip_key_map(self.handle), own, strength_patch, strength_model)
        self.weight_patches += triples
        return accepted

    def get_key_patches(self) -> dict:
        return key_patches(self.to_handle(), self.ctx.devices, clip_key_map(self.handle))

    def load_model(self) -> "ComfyCLIP":
        """ComfyUI loads the text encoder onto its device here; ours is placed when it encodes."""
        return self

    def get_sd(self) -> dict:
        params = dict(self.handle.module.named_parameters())
        return {k: params[ours] for k, ours in clip_key_map(self.handle).items()}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise _unsupported("CLIP", name)


class ComfyVAE:
    """A VAE handle as comfy.sd.VAE: encode / decode (tiled too) between IMAGE and raw latents."""

    def __init__(self, handle: ModelHandle, ctx) -> None:
        self.handle, self.ctx = handle, ctx
        fmt = handle.module.latent_format
        self.downscale_ratio = self.upscale_ratio = int(fmt.downscale)
        self.latent_channels = int(fmt.channels)
        self.latent_dim = 2
        self.output_channels = 3

    def to_handle(self) -> ModelHandle:
        return self.handle

    def clone(self) -> "ComfyVAE":
        return ComfyVAE(self.handle, self.ctx)

    @property
    def first_stage_model(self) -> torch.nn.Module:
        return self.handle.module.vae

    @property
    def vae_dtype(self) -> torch.dtype:
        return self.ctx.devices.dtype_for(self.handle)

    @property
    def device(self) -> torch.device:
        return self.ctx.devices.device

    @property
    def output_device(self) -> torch.device:
        return torch.device("cpu")

    def spacial_compression_decode(self) -> int:
        return self.upscale_ratio

    def spacial_compression_encode(self) -> int:
        return self.downscale_ratio

    def temporal_compression_decode(self) -> None:
        return None

    def throw_exception_if_invalid(self) -> None:
        return None

    def vae_encode_crop_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        return crop_to_multiple(pixels, self.downscale_ratio)

    def encode(self, pixel_samples: torch.Tensor) -> torch.Tensor:
        """IMAGE [B,H,W,C] -> raw latent [B,c,H/8,W/8] (the image cropped to a multiple of 8 first)."""
        return vae_encode(self.ctx, self.handle, pixel_samples[..., :3])

    def decode(self, samples_in: torch.Tensor, vae_options: dict | None = None) -> torch.Tensor:
        """Raw latent -> IMAGE [B,H,W,3] in 0..1, on the CPU."""
        return vae_decode(self.ctx, self.handle, samples_in)

    def decode_tiled(self, samples: torch.Tensor, tile_x: int | None = None, tile_y: int | None = None,
                     overlap: int | None = None, tile_t=None, overlap_t=None) -> torch.Tensor:
        """Tiles in latent cells (ComfyUI's defaults: 64, overlap 16); square tiles of max(tile_x, tile_y)."""
        tile = max(tile_x or 64, tile_y or 64)
        ov = min(16 if overlap is None else overlap, tile // 4)
        with self.ctx.devices.use(self.handle) as model, torch.no_grad():
            images = tiled(lambda t: model.decode(t).movedim(-1, 1), samples, tile, ov, self.upscale_ratio, 3)
        return images.movedim(1, -1).clamp(0, 1).cpu()

    def encode_tiled(self, pixel_samples: torch.Tensor, tile_x: int | None = None, tile_y: int | None = None,
                     overlap: int | None = None, tile_t=None, overlap_t=None) -> torch.Tensor:
        """Tiles in pixels (ComfyUI's defaults: 512, overlap 64)."""
        f = self.downscale_ratio
        pixels = crop_to_multiple(pixel_samples[..., :3], f)
        tile = max(f, max(tile_x or 512, tile_y or 512) // f * f)
        ov = min((64 if overlap is None else overlap) // f * f, tile // 2)
        with self.ctx.devices.use(self.handle) as model, torch.no_grad():
            latent = tiled(lambda t: model.encode(t.movedim(1, -1)), pixels.movedim(-1, 1), tile, ov, 1.0 / f,
                           self.latent_channels)
        return latent.cpu()

    def get_sd(self) -> dict:
        return dict(self.handle.module.vae.state_dict())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise _unsupported("VAE", name)
