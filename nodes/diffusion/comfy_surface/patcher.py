"""ComfyUI's ModelPatcher surface over a MODEL handle (what a ComfyUI pack node sees as its MODEL input).

The node gets a ComfyModelPatcher around the handle; what it returns is turned back into a handle
(to_handle). Like ComfyUI's ModelPatcher, clone() shares the model and copies the options, and the
setters change this patcher in place; the handle it came from never changes, so a patch cannot leak
into the unpatched model. model_options are ComfyUI's keys, read by our sampler (model_options.py):
sampler_cfg_function, sampler_post_cfg_function, sampler_pre_cfg_function, model_function_wrapper,
denoise_mask_function, disable_cfg1_optimization, transformer_options (patches: attn1_patch,
attn2_patch, output_block_patch, middle_patch; patches_replace: attn1, attn2).
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

import torch

from nodegraph import ModelHandle

from ..model_options import copy_options, sampling_model
from ..sampling import ModelSampling
from .weight_patches import comfy_patches, key_patches, unet_key_map

# transformer_options["patches"] kinds our U-Net honours (unet_patches.py); ComfyUI has more
HONOURED_PATCHES = ("attn1_patch", "attn2_patch", "output_block_patch", "middle_patch")


class UnsupportedSurface(AttributeError):
    """A ComfyUI model attribute or setter nodegraph does not provide."""


def _unsupported(owner: str, name: str) -> UnsupportedSurface:
    return UnsupportedSurface(f"{owner}.{name} is not provided by nodegraph's ComfyUI compatibility layer "
                              "(see the README's 'ComfyUI custom node packs' section)")


class ComfyBaseModel:
    """`patcher.model`: ComfyUI's BaseModel as far as packs read it."""

    def __init__(self, patcher: "ComfyModelPatcher") -> None:
        self._patcher = patcher

    @property
    def model_sampling(self) -> ModelSampling:
        return self._patcher.get_model_object("model_sampling")

    @property
    def latent_format(self):
        return self._patcher.get_model_object("latent_format")

    @property
    def diffusion_model(self) -> torch.nn.Module:
        """The diffusers U-Net (not ComfyUI's LDM UNetModel: its blocks have diffusers' names)."""
        return self._patcher.handle.module.unet

    @property
    def model_type(self) -> str:
        return {"v": "V_PREDICTION"}.get(self.model_sampling.prediction_type, "EPS")

    @property
    def device(self) -> torch.device:
        return self._patcher.handle.module.device

    def get_dtype(self) -> torch.dtype:
        return self._patcher.model_dtype()

    def process_latent_in(self, latent: torch.Tensor) -> torch.Tensor:
        return self.latent_format.process_in(latent)

    def process_latent_out(self, latent: torch.Tensor) -> torch.Tensor:
        return self.latent_format.process_out(latent)

    def __getattr__(self, name: str) -> Any:
        raise _unsupported("BaseModel", name)


class ComfyModelPatcher:
    """A MODEL handle as ComfyUI's ModelPatcher."""

    def __init__(self, handle: ModelHandle, ctx) -> None:
        self.handle = handle  # the handle this came from: module, name, dtype, facts
        self.ctx = ctx
        self.model_options: dict = copy_options(handle.info.get("model_options") or {})
        self.object_patches: dict = dict(handle.info.get("object_patches") or {})
        self.weight_patches: list = list(handle.patches)  # our (key, strength, patch) triples
        self.model = ComfyBaseModel(self)
        self.parent = None
        self._model_sampling = None  # made once, so model.model_sampling is one object (as ComfyUI's)

    # --- identity and copies ---------------------------------------------------------------------------
    def clone(self) -> "ComfyModelPatcher":
        twin = ComfyModelPatcher(self.handle, self.ctx)
        twin.model_options = copy_options(self.model_options)
        twin.object_patches = dict(self.object_patches)
        twin.weight_patches = list(self.weight_patches)
        twin.parent = self
        return twin

    def is_clone(self, other: Any) -> bool:
        return isinstance(other, ComfyModelPatcher) and other.handle.module is self.handle.module

    def clone_has_same_weights(self, other: Any) -> bool:
        return self.is_clone(other) and [(k, s, id(p)) for k, s, p in self.weight_patches] == \
            [(k, s, id(p)) for k, s, p in other.weight_patches]

    def to_handle(self) -> ModelHandle:
        """The handle this patcher stands for now (a new one; the original is unchanged)."""
        twin = self.handle.clone()
        twin.patches = tuple(self.weight_patches)
        info = dict(twin.info)
        info["model_options"] = copy_options(self.model_options)
        if self.object_patches:
            info["object_patches"] = dict(self.object_patches)
        else:
            info.pop("object_patches", None)
        twin.info = info
        return twin

    # --- weights ----------------------------------------------------------------------------------------
    def add_patches(self, patches: dict, strength_patch: float = 1.0, strength_model: float = 1.0) -> list:
        own = {k for k, _ in self.handle.module.named_parameters()}
        triples, accepted = comfy_patches(patches, unet_key_map(self.handle), own, strength_patch, strength_model)
        self.weight_patches += triples
        return accepted

    def get_key_patches(self, filter_prefix: str | None = None) -> dict:
        return key_patches(self.to_handle(), self.ctx.devices, unet_key_map(self.handle), filter_prefix)

    def model_state_dict(self, filter_prefix: str | None = None) -> dict:
        """ComfyUI keys -> the base weights (without this patcher's patches), as ComfyUI's."""
        params = dict(self.handle.module.named_parameters())
        return {k: params[ours] for k, ours in unet_key_map(self.handle).items()
                if filter_prefix is None or k.startswith(filter_prefix)}

    # --- objects ----------------------------------------------------------------------------------------
    def add_object_patch(self, name: str, obj: Any) -> None:
        if name not in ("model_sampling", "latent_format"):
            raise _unsupported("ModelPatcher.add_object_patch", name)
        self.object_patches[name] = obj
        self._model_sampling = None

    def get_model_object(self, name: str) -> Any:
        if name in self.object_patches:
            return self.object_patches[name]
        if name == "model_sampling":
            if self._model_sampling is None:
                self._model_sampling = ModelSampling.for_model(sampling_model(self.handle.module, self.to_handle()))
            return self._model_sampling
        if name == "latent_format":
            return self.handle.module.latent_format
        if name == "diffusion_model":
            return self.handle.module.unet
        raise _unsupported("ModelPatcher.get_model_object", repr(name))

    # --- devices and sizes ------------------------------------------------------------------------------
    def model_dtype(self) -> torch.dtype:
        return self.ctx.devices.dtype_for(self.handle)

    @property
    def load_device(self) -> torch.device:
        return self.ctx.devices.device

    @property
    def offload_device(self) -> torch.device:
        return self.ctx.devices.offload_device

    def current_loaded_device(self) -> torch.device:
        return self.handle.module.device

    def model_size(self) -> int:
        return self.handle.size_bytes

    @property
    def size(self) -> int:
        return self.handle.size_bytes

    def loaded_size(self) -> int:
        return self.handle.size_bytes

    # --- ComfyUI's model_options setters ----------------------------------------------------------------
    def set_model_sampler_cfg_function(self, sampler_cfg_function: Callable, disable_cfg1_optimization: bool = False):
        if len(inspect.signature(sampler_cfg_function).parameters) == 3:  # the old (cond, uncond, scale) form
            old = sampler_cfg_function
            self.model_options["sampler_cfg_function"] = lambda args: old(args["cond"], args["uncond"], args["cond_scale"])
        else:
            self.model_options["sampler_cfg_function"] = sampler_cfg_function
        if disable_cfg1_optimization:
            self.model_options["disable_cfg1_optimization"] = True

    def set_model_sampler_post_cfg_function(self, post_cfg_function: Callable, disable_cfg1_optimization: bool = False):
        self._append("sampler_post_cfg_function", post_cfg_function, disable_cfg1_optimization)

    def set_model_sampler_pre_cfg_function(self, pre_cfg_function: Callable, disable_cfg1_optimization: bool = False):
        self._append("sampler_pre_cfg_function", pre_cfg_function, disable_cfg1_optimization)

    def _append(self, key: str, fn: Callable, disable_cfg1_optimization: bool) -> None:
        self.model_options[key] = list(self.model_options.get(key, [])) + [fn]
        if disable_cfg1_optimization:
            self.model_options["disable_cfg1_optimization"] = True

    def set_model_unet_function_wrapper(self, unet_wrapper_function: Callable) -> None:
        self.model_options["model_function_wrapper"] = unet_wrapper_function

    def set_model_denoise_mask_function(self, denoise_mask_function: Callable) -> None:
        self.model_options["denoise_mask_function"] = denoise_mask_function

    def set_model_patch(self, patch: Callable, name: str) -> None:
        if name not in HONOURED_PATCHES:
            raise _unsupported("ModelPatcher.set_model_patch", f"{name} (nodegraph's U-Net honours "
                               f"{', '.join(HONOURED_PATCHES)})")
        to = self.model_options.setdefault("transformer_options", {})
        patches = to.setdefault("patches", {})
        patches[name] = list(patches.get(name, [])) + [patch]

    def set_model_patch_replace(self, patch: Callable, name: str, block_name: str, number: int,
                                transformer_index: int | None = None) -> None:
        if name not in ("attn1", "attn2"):
            raise _unsupported("ModelPatcher.set_model_patch_replace", f"{name} (attn1 and attn2 are honoured)")
        to = self.model_options.setdefault("transformer_options", {})
        table = to.setdefault("patches_replace", {}).setdefault(name, {})
        table[(block_name, number) if transformer_index is None else (block_name, number, transformer_index)] = patch

    def set_model_attn1_patch(self, patch: Callable) -> None:
        self.set_model_patch(patch, "attn1_patch")

    def set_model_attn2_patch(self, patch: Callable) -> None:
        self.set_model_patch(patch, "attn2_patch")

    def set_model_attn1_replace(self, patch, block_name, number, transformer_index=None) -> None:
        self.set_model_patch_replace(patch, "attn1", block_name, number, transformer_index)

    def set_model_attn2_replace(self, patch, block_name, number, transformer_index=None) -> None:
        self.set_model_patch_replace(patch, "attn2", block_name, number, transformer_index)

    def set_model_output_block_patch(self, patch: Callable) -> None:
        self.set_model_patch(patch, "output_block_patch")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise _unsupported("ModelPatcher", name)

    def __repr__(self) -> str:
        return f"<ComfyModelPatcher of {self.handle!r} patches={len(self.weight_patches)}>"
