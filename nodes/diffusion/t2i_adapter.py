"""T2I-Adapters (Mou et al. 2023) loaded by ControlNetLoader, as ComfyUI 0.8 does (comfy/controlnet.py
load_t2i_adapter, comfy/t2i_adapter/adapter.py).

Files. A T2I-Adapter turns the hint image into one feature map per U-Net level. ComfyUI tells the layouts
apart by keys (after opening an "adapter" wrapper):

  full (TencentARC)     conv_in.*, body.{level*2+j}.{in_conv,block1,block2}.*       channels [c, 2c, 4c, 4c]
  full, SDXL            the same, hint channels x 256 (cin 256 or 768): pixel unshuffle 16, no downsample at
                        level 1
  light                 body.{level}.{in_conv,out_conv}.*, body.{level}.body.{j}.{block1,block2}.*
  diffusers             adapter.body.{level}.resnets.{j}.*, adapter.conv_in.* (T2IAdapter's own state dict)

Every layout is brought to diffusers' T2IAdapter (FullAdapter / FullAdapterXL / LightAdapter), sizes read from
the shapes, and filled strictly: a key missing or left over is an error.

Runtime. ComfyUI adds the features to the U-Net's hidden states after the last block of each encoder level
(its "input" control) and, for SDXL, after the middle block; diffusers' `down_intrablock_additional_residuals`
do exactly that, so the sampler hands the features to the U-Net under that key (models.py). The adapter runs
once per hint (its output does not depend on the step), then each step gets the features times strength,
stacked with the controls applied before it.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import torch

from nodegraph import ModelHandle, read_weights

from .controlnet import ControlNetError, add_residuals, broadcast_hint, previous_and_active, upscale_hint

__all__ = ["T2IAdapterControl", "adapter_config", "is_t2i_adapter", "load_t2i_adapter_file", "to_diffusers_keys"]

DIFFUSERS_KEY = "adapter.body.0.resnets.0.block1.weight"


_CONTROLNET_PARTS = ("zero_convs.", "input_hint_block.", "controlnet_cond_embedding.", "controlnet_down_blocks.")


def is_t2i_adapter(keys) -> bool:
    """ComfyUI's key test; ControlNets (which have a conv_in too) are recognised first, as there."""
    keys = set(keys)
    if any(part in k for k in keys for part in _CONTROLNET_PARTS):
        return False
    return DIFFUSERS_KEY in keys or "body.0.in_conv.weight" in keys or "conv_in.weight" in keys


def _indices(keys, pattern: str) -> list[int]:
    return sorted({int(m.group(1)) for k in keys if (m := re.match(pattern, k))})


def to_diffusers_keys(sd: dict[str, torch.Tensor], name: str = "adapter") -> tuple[dict[str, torch.Tensor], str]:
    """(the state dict in diffusers' T2IAdapter keys, "full" | "light"). Values pass through."""
    keys = list(sd)
    if DIFFUSERS_KEY in sd:
        return dict(sd), "light" if "adapter.body.0.out_conv.weight" in sd else "full"
    out: dict[str, torch.Tensor] = {}
    if "body.0.in_conv.weight" in sd:  # light: one extractor per level
        for key, value in sd.items():
            m = re.match(r"body\.(\d+)\.(in_conv|out_conv)\.(weight|bias)$", key)
            r = re.match(r"body\.(\d+)\.body\.(\d+)\.(block[12])\.(weight|bias)$", key)
            if m:
                out[f"adapter.body.{m.group(1)}.{m.group(2)}.{m.group(3)}"] = value
            elif r:
                out[f"adapter.body.{r.group(1)}.resnets.{r.group(2)}.{r.group(3)}.{r.group(4)}"] = value
            else:
                raise ControlNetError(f"{name}: light T2I-Adapter key {key!r} has no place in the adapter")
        return out, "light"
    if any(k.endswith("down_opt.op.weight") for k in keys):
        raise ControlNetError(f"{name}: T2I-Adapters with strided-conv downsampling (down_opt.op) are not supported")
    ksize = sd["body.0.block2.weight"].shape[2] if "body.0.block2.weight" in sd else 1
    if ksize != 1:
        raise ControlNetError(f"{name}: T2I-Adapter with {ksize}x{ksize} resnet convs; only 1x1 (every released "
                              "adapter) is supported")
    for key, value in sd.items():
        m = re.match(r"body\.(\d+)\.(in_conv|block1|block2)\.(weight|bias)$", key)
        if key.startswith("conv_in."):
            out["adapter." + key] = value
        elif m and m.group(2) == "in_conv":
            out[f"adapter.body.{int(m.group(1)) // 2}.in_conv.{m.group(3)}"] = value
        elif m:
            k = int(m.group(1))
            out[f"adapter.body.{k // 2}.resnets.{k % 2}.{m.group(2)}.{m.group(3)}"] = value
        else:
            raise ControlNetError(f"{name}: T2I-Adapter key {key!r} has no place in the adapter")
    return out, "full"


def adapter_config(sd: dict[str, torch.Tensor], kind: str, name: str = "adapter") -> dict:
    """diffusers T2IAdapter config from a diffusers-keyed state dict."""
    keys = list(sd)
    levels = _indices(keys, r"adapter\.body\.(\d+)\.")
    res_blocks = _indices(keys, r"adapter\.body\.0\.resnets\.(\d+)\.")
    if kind == "light":
        cin = int(sd["adapter.body.0.in_conv.weight"].shape[1])
        widths = [int(sd[f"adapter.body.{i}.out_conv.weight"].shape[0]) for i in levels]
        if len(widths) < 2 or widths[-1] != widths[-2]:
            raise ControlNetError(f"{name}: light T2I-Adapter level widths {widths}: the last two must match")
        return {"in_channels": cin // 64, "channels": widths[:-1], "num_res_blocks": len(res_blocks),
                "downscale_factor": 8, "adapter_type": "light_adapter"}
    cin = int(sd["adapter.conv_in.weight"].shape[1])
    widths = [int(sd[f"adapter.body.{i}.resnets.0.block1.weight"].shape[0]) for i in levels]
    xl = cin in (256, 768)  # ComfyUI's rule: SDXL adapters unshuffle by 16
    factor = 16 if xl else 8
    if cin % (factor * factor):
        raise ControlNetError(f"{name}: conv_in takes {cin} channels, not a multiple of {factor}x{factor}")
    return {"in_channels": cin // (factor * factor), "channels": widths, "num_res_blocks": len(res_blocks),
            "downscale_factor": factor, "adapter_type": "full_adapter_xl" if xl else "full_adapter"}


def build_adapter(sd: dict[str, torch.Tensor], name: str = "adapter"):
    """A diffusers T2IAdapter filled from any supported layout; (module, config)."""
    from diffusers import T2IAdapter
    converted, kind = to_diffusers_keys(sd, name)
    config = adapter_config(converted, kind, name)
    module = T2IAdapter(**config)
    missing, unexpected = module.load_state_dict(converted, strict=False)
    if missing or unexpected:
        raise ControlNetError(f"{name}: T2I-Adapter weights do not fit the inferred {config['adapter_type']} "
                              f"{config['channels']}: missing {missing[:6]}, unexpected {unexpected[:6]}")
    return module.eval(), config


def load_t2i_adapter_file(path: str | Path, devices, name: str) -> "T2IAdapterControl | None":
    """The CONTROL_NET for a T2I-Adapter file, or None when the file is no T2I-Adapter (a ControlNet)."""
    path = Path(path)
    if path.is_dir():
        return None
    if path.suffix.lower() in (".safetensors", ".sft"):
        from safetensors import safe_open
        with safe_open(str(path), framework="pt", device="cpu") as f:
            keys = list(f.keys())
        if not is_t2i_adapter(keys):
            return None
    weights = read_weights(path, name, wrappers=("adapter", "state_dict"))
    keys = weights.tensors.keys()
    if not is_t2i_adapter(keys):
        return None
    module, config = build_adapter(weights.tensors, name)
    handle = ModelHandle(module, Path(name).stem, info={"kind": "t2i_adapter", **config})
    return T2IAdapterControl(handle, devices, config["in_channels"], module.adapter.unshuffle.downscale_factor)


class T2IAdapterControl:
    """CONTROL_NET for a T2I-Adapter, with ControlNet's method names (copy, set_cond_hint, pre_run,
    get_control ...), so ControlNetApply* and the sampler treat both alike."""

    compression_ratio = 8  # hint pixels per latent cell
    upscale_algorithm = "nearest-exact"

    def __init__(self, handle: ModelHandle, devices, channels_in: int, unshuffle: int) -> None:
        self.handle, self.devices = handle, devices
        self.channels_in, self.unshuffle = channels_in, unshuffle
        self.cond_hint_original: torch.Tensor | None = None
        self.strength = 1.0
        self.timestep_percent_range = (0.0, 1.0)
        self.previous_controlnet = None
        self._sigma_range: tuple[float, float] | None = None
        self._features: tuple[tuple, list[torch.Tensor]] | None = None  # (hint key, adapter output)

    def copy(self) -> "T2IAdapterControl":
        twin = T2IAdapterControl(self.handle, self.devices, self.channels_in, self.unshuffle)
        twin.cond_hint_original, twin.strength = self.cond_hint_original, self.strength
        twin.timestep_percent_range = self.timestep_percent_range
        return twin

    def set_cond_hint(self, cond_hint: torch.Tensor, strength: float = 1.0,
                      timestep_percent_range: tuple[float, float] = (0.0, 1.0)) -> "T2IAdapterControl":
        channels = cond_hint.shape[1]
        if self.channels_in != 1 and channels != self.channels_in:  # a 1-channel adapter takes the mean
            raise ControlNetError(f"image: has {channels} channels, this T2I-Adapter takes {self.channels_in}")
        self.cond_hint_original = cond_hint
        self.strength = float(strength)
        self.timestep_percent_range = (float(timestep_percent_range[0]), float(timestep_percent_range[1]))
        return self

    def set_previous_controlnet(self, control) -> "T2IAdapterControl":
        self.previous_controlnet = control
        return self

    def pre_run(self, model, model_sampling) -> None:
        start, end = self.timestep_percent_range
        self._sigma_range = (model_sampling.percent_to_sigma(start), model_sampling.percent_to_sigma(end))
        if self.previous_controlnet is not None and hasattr(self.previous_controlnet, "pre_run"):
            self.previous_controlnet.pre_run(model, model_sampling)

    def cleanup(self) -> None:
        self._features, self._sigma_range = None, None
        if self.previous_controlnet is not None and hasattr(self.previous_controlnet, "cleanup"):
            self.previous_controlnet.cleanup()

    def hint_for(self, x: torch.Tensor, chunks: int) -> torch.Tensor:
        """ComfyUI's hint: the latent's pixel size rounded up to the unshuffle factor, centre-cropped and
        resized, averaged to one channel for 1-channel adapters, broadcast to the batch."""
        width = math.ceil(x.shape[3] * self.compression_ratio / self.unshuffle) * self.unshuffle
        height = math.ceil(x.shape[2] * self.compression_ratio / self.unshuffle) * self.unshuffle
        hint = upscale_hint(self.cond_hint_original.float(), width, height, self.upscale_algorithm)
        if self.channels_in == 1 and hint.shape[1] > 1:
            hint = hint.mean(1, keepdim=True)
        return broadcast_hint(hint, x.shape[0], chunks) if hint.shape[0] != x.shape[0] else hint

    def get_control(self, x: torch.Tensor, sigma: torch.Tensor, conds: dict, n: int) -> dict | None:
        previous, active = previous_and_active(self, "T2I-Adapter", x, sigma, conds, n)
        if not active:
            return previous
        key = (tuple(x.shape), n, x.device)
        if self._features is None or self._features[0] != key:
            with self.devices.use(self.handle) as net:
                param = next(net.parameters())
                hint = self.hint_for(x, n).to(param.device, param.dtype)
                self._features = (key, [f.to(x.device) for f in net(hint)])
        mine = {"down_intrablock_additional_residuals": [(f * self.strength).to(x.dtype) for f in self._features[1]]}
        return add_residuals(mine, previous)

    def chain(self) -> list:
        out, c = [], self
        while c is not None:
            out.append(c)
            c = getattr(c, "previous_controlnet", None)
        return out

    def __repr__(self) -> str:
        return (f"<T2IAdapter {self.handle.name} strength={self.strength} range={self.timestep_percent_range} "
                f"stacked={len(self.chain()) - 1}>")
