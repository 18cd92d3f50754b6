"""The CONTROL_NET value around a device-managed diffusers ControlNetModel (its files: controlnet_files.py).

`ControlNet` is ComfyUI's ControlBase/ControlNet with the same method names: the loader's object has
no hint; ControlNetApply* copy it with a hint image, a strength and a step window, chained to the
control that the conditioning already had (`previous_controlnet`).
The sampler calls `pre_run(model, model_sampling)` once per run (sigma window, hint cache) and,
for every batch of model inputs, `get_control(x, sigma, conds, n)`: it runs every control of the
chain whose window contains sigma and returns the residuals summed, each scaled by its own
strength, as DiffusionModel.apply's extras `down_block_additional_residuals` /
`mid_block_additional_residual`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nodegraph import ModelHandle, common_upscale

from .controlnet_files import ControlNetError, LoadedControlNet, accepted_config, build_controlnet


def upscale_hint(hint: torch.Tensor, width: int, height: int, method: str = "nearest-exact") -> torch.Tensor:
    """ComfyUI's common_upscale(..., crop="center") for [B,C,H,W]; a hint already that size is kept."""
    if hint.shape[-2:] == (height, width):
        return hint
    return common_upscale(hint, width, height, method, "center")


def previous_and_active(control, kind: str, x: torch.Tensor, sigma: torch.Tensor, conds: dict,
                        n: int) -> tuple[dict | None, bool]:
    """The start of every control's get_control: the residuals of the controls chained before it, and
    whether this one runs at sigma (strength not 0, sigma inside its step window). `control` has
    previous_controlnet, strength, timestep_percent_range, cond_hint_original and the _sigma_range
    that pre_run sets; `kind` names it in errors."""
    previous = None
    if control.previous_controlnet is not None:
        previous = control.previous_controlnet.get_control(x, sigma, conds, n)
    if control._sigma_range is None:
        raise ControlNetError(f"{kind} used by a sampler that did not call pre_run(model, model_sampling)")
    if control.strength == 0:
        return previous, False
    if control.timestep_percent_range != (0.0, 1.0):  # a step window: read sigma on the host (a sync)
        s = float(sigma[0])
        if s > control._sigma_range[0] or s < control._sigma_range[1]:
            return previous, False
    if control.cond_hint_original is None:
        raise ControlNetError(f"{kind} has no hint image: apply it with ControlNetApply(Advanced)")
    return previous, True


def broadcast_hint(hint: torch.Tensor, batch: int, chunks: int) -> torch.Tensor:
    """ComfyUI's broadcast_image_to: a hint batch of one broadcasts by itself; a longer one is cut or
    tiled to one chunk's batch and repeated for each of the `chunks` conditionings run together."""
    if hint.shape[0] == 1:
        return hint
    per_chunk = batch // chunks
    hint = hint[:per_chunk]
    if per_chunk > hint.shape[0]:
        hint = torch.cat([hint] * (per_chunk // hint.shape[0]) + [hint[:per_chunk % hint.shape[0]]], dim=0)
    return hint if hint.shape[0] == batch else torch.cat([hint] * chunks, dim=0)


def add_residuals(mine: dict, previous: dict | None) -> dict:
    """Sum two sets of residuals key by key (a ControlNet or T2I-Adapter stacked on another one)."""
    if not previous:
        return mine
    out = dict(previous)
    for key, value in mine.items():
        other = out.get(key)
        if other is None:
            out[key] = value
        elif isinstance(value, (list, tuple)):
            if len(value) != len(other):
                raise ControlNetError("stacked controls give different numbers of residuals: they do not fit the "
                                      "same U-Net")
            out[key] = [a + b for a, b in zip(value, other)]
        else:
            out[key] = value + other
    return out


class ControlNetModule(torch.nn.Module):
    """What a CONTROL_NET's ModelHandle holds: the diffusers ControlNetModel (patch keys are
    "controlnet.<diffusers key>"). A plain nn.Module around it, so the device manager's dtype moves
    go through torch's own .to()."""

    def __init__(self, controlnet: torch.nn.Module) -> None:
        super().__init__()
        self.controlnet = controlnet

    @property
    def config(self):
        return self.controlnet.config

    def forward(self, *args, **kwargs):
        return self.controlnet(*args, **kwargs)


class ControlNet:
    """CONTROL_NET: a device-managed ControlNetModel; once applied, also a hint, a strength and a
    step window, chained to the previous control of the conditioning (ComfyUI's method names)."""

    compression_ratio = 8  # hint pixels per latent cell
    upscale_algorithm = "nearest-exact"

    def __init__(self, handle: ModelHandle, devices, global_average_pooling: bool = False) -> None:
        self.handle = handle
        self.devices = devices
        self.global_average_pooling = global_average_pooling
        self.cond_hint_original: torch.Tensor | None = None  # [B, C, H, W] in 0..1
        self.strength = 1.0
        self.timestep_percent_range = (0.0, 1.0)
        self.previous_controlnet: Any = None
        self._sigma_range: tuple[float, float] | None = None
        self._ms = None
        self._hint: torch.Tensor | None = None

    def copy(self) -> "ControlNet":
        twin = ControlNet(self.handle, self.devices, self.global_average_pooling)
        twin.cond_hint_original, twin.strength = self.cond_hint_original, self.strength
        twin.timestep_percent_range = self.timestep_percent_range
        return twin

    def set_cond_hint(self, cond_hint: torch.Tensor, strength: float = 1.0,
                      timestep_percent_range: tuple[float, float] = (0.0, 1.0)) -> "ControlNet":
        self.cond_hint_original = cond_hint
        self.strength = float(strength)
        self.timestep_percent_range = (float(timestep_percent_range[0]), float(timestep_percent_range[1]))
        return self

    def set_previous_controlnet(self, control: Any) -> "ControlNet":
        self.previous_controlnet = control
        return self

    @property
    def hint_channels(self) -> int:
        return int(self.handle.info.get("conditioning_channels", 3))

    # --- per sampling run ---------------------------------------------------------------------
    def pre_run(self, model, model_sampling) -> None:
        """Before sampling: the step window as sigmas of this model's schedule."""
        self._ms = model_sampling
        start, end = self.timestep_percent_range
        self._sigma_range = (model_sampling.percent_to_sigma(start), model_sampling.percent_to_sigma(end))
        if self.previous_controlnet is not None and hasattr(self.previous_controlnet, "pre_run"):
            self.previous_controlnet.pre_run(model, model_sampling)

    def cleanup(self) -> None:
        self._hint, self._ms, self._sigma_range = None, None, None
        if self.previous_controlnet is not None and hasattr(self.previous_controlnet, "cleanup"):
            self.previous_controlnet.cleanup()

    def _hint_for(self, x: torch.Tensor, chunks: int, dtype: torch.dtype) -> torch.Tensor:
        height, width = x.shape[2] * self.compression_ratio, x.shape[3] * self.compression_ratio
        if self._hint is None or self._hint.shape[-2:] != (height, width):
            hint = self.cond_hint_original.to(x.device, torch.float32)
            self._hint = upscale_hint(hint, width, height, self.upscale_algorithm).to(dtype)
        if self._hint.shape[0] != x.shape[0]:
            self._hint = broadcast_hint(self._hint, x.shape[0], chunks)
        return self._hint

    def get_control(self, x: torch.Tensor, sigma: torch.Tensor, conds: dict, n: int) -> dict | None:
        """Residuals for a batch of model inputs x [B,C,h,w] at sigma [B] made of n conditionings:
        this control's (if sigma is in its window) plus the previous controls', or None."""
        previous, active = previous_and_active(self, "ControlNet", x, sigma, conds, n)
        if not active:
            return previous
        with self.devices.use(self.handle) as net:
            param = next(net.parameters())
            hint = self.hint_for(x.to(param.device), n, param.dtype)
            xc = self._ms.calculate_input(sigma, x)
            timestep = self._ms.timestep(sigma.to(param.device)).float()
            mine = self.residuals(net, hint, xc, timestep, conds, x.dtype)
        return add_residuals(mine, previous)

    def hint_for(self, x: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
        """The hint image at x's size and batch (cached for the run), checked against the net."""
        hint = self._hint_for(x, n, dtype)
        if hint.shape[1] != self.hint_channels:
            raise ControlNetError(f"the hint image has {hint.shape[1]} channels, this ControlNet takes "
                                  f"{self.hint_channels}")
        return hint

    def residuals(self, net: torch.nn.Module, hint: torch.Tensor, xc: torch.Tensor, timestep: torch.Tensor,
                  conds: dict, out_dtype: torch.dtype) -> dict:
        """This control's residuals, scaled, from the model input xc (c_in applied) and timestep. No host
        sync and no allocation that outlives the call: CUDA graphs capture it (GraphedControl)."""
        param = next(net.parameters())
        dtype, device = param.dtype, param.device
        kwargs = {}
        if getattr(net.config, "addition_embed_type", None) == "text_time":
            pooled, time_ids = conds.get("pooled_output"), conds.get("time_ids")
            if pooled is None or time_ids is None:
                raise ControlNetError("an SDXL ControlNet needs the pooled text embedding and size ids "
                                      "(use an SDXL model and its CLIP)")
            kwargs["added_cond_kwargs"] = {"text_embeds": pooled.to(device, dtype),
                                           "time_ids": time_ids.to(device, dtype)}
        down, mid = net(xc.to(device, dtype), timestep, encoder_hidden_states=conds["context"].to(device, dtype),
                        controlnet_cond=hint, return_dict=False, **kwargs)

        def scaled(r: torch.Tensor) -> torch.Tensor:
            if self.global_average_pooling:
                r = r.mean(dim=(2, 3), keepdim=True)
            return (r * self.strength).to(out_dtype)

        return {"down_block_additional_residuals": [scaled(r) for r in down],
                "mid_block_additional_residual": scaled(mid)}

    def chain(self) -> list["ControlNet"]:
        """This control and the ones below it, newest first."""
        out, c = [], self
        while c is not None:
            out.append(c)
            c = getattr(c, "previous_controlnet", None)
        return out

    def __repr__(self) -> str:
        return (f"<ControlNet {self.handle.name} strength={self.strength} range={self.timestep_percent_range} "
                f"stacked={len(self.chain()) - 1}>")


def controlnet_info(loaded: LoadedControlNet) -> dict:
    config = loaded.config
    return {"layout": loaded.layout, "conditioning_channels": int(config.get("conditioning_channels", 3)),
            "cross_attention_dim": config.get("cross_attention_dim"),
            "block_out_channels": list(config.get("block_out_channels", []))}


def controlnet_from_loaded(loaded: LoadedControlNet, devices, name: str = "controlnet") -> ControlNet:
    """The CONTROL_NET value for a loaded file. ComfyUI's rule: files named *_shuffle pool their
    residuals globally."""
    stem = Path(name).stem
    pooling = stem.endswith("_shuffle") or stem.endswith("_shuffle_fp16")
    return ControlNet(ModelHandle(ControlNetModule(loaded.module), stem, info=controlnet_info(loaded)), devices, pooling)


# Full-size random ControlNets for benchmarks

def random_controlnet(devices, config_name: str = "sd15_unet", seed: int = 0,
                      device: str | torch.device | None = None, **overrides) -> ControlNet:
    """A CONTROL_NET with random weights of a reference U-Net's size (default SD1.5: 361 M
    parameters), built directly on `device` (default: the device manager's), for benchmarks.
    The zero convs get small random weights too, so the residuals are not zero."""
    from .checkpoint.layout import reference_config
    config = {**reference_config(config_name), **overrides}
    module = build_controlnet(config)
    device = torch.device(device) if device is not None else devices.device
    module.to_empty(device=device)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    with torch.no_grad():
        for sub in module.modules():
            if hasattr(sub, "reset_parameters"):
                sub.reset_parameters()
    torch.random.set_rng_state(generator_state)
    loaded = LoadedControlNet(module.eval(), accepted_config(config), "diffusers")
    return controlnet_from_loaded(loaded, devices, f"random-{config_name}")



class GraphedControl:
    """A chain of ControlNets run inside the U-Net's CUDA graph (cuda_graphs.graphed_apply), so a
    ControlNet step is one replay too. Only chains that need nothing from the host per step qualify:
    plain ControlNets over the whole schedule (a step window reads sigma on the host) that were
    pre_run with the sampler's own model sampling (then their c_in input and timestep are the U-Net's).

    What a graph bakes in is its key: each net's weight addresses and dtype, strength and pooling.
    A new control image, strength or model therefore gives a new graph (or, for the image alone, new
    input values: the hints are graph inputs, copied in before each replay)."""

    def __init__(self, control: ControlNet, n: int) -> None:
        self.chain = [c for c in control.chain() if c.strength != 0][::-1]  # oldest first, as get_control sums
        self.n = n

    @staticmethod
    def supports(control: Any, model_sampling: Any) -> bool:
        chain = control.chain() if isinstance(control, ControlNet) else None
        return bool(chain) and all(type(c) is ControlNet and c.timestep_percent_range == (0.0, 1.0)
                                   and c._ms is model_sampling and c.cond_hint_original is not None
                                   for c in chain) and any(c.strength != 0 for c in chain)

    def held(self, stack, x: torch.Tensor) -> tuple[tuple, list, list[torch.Tensor]]:
        """Each net kept loaded (in `stack`, an ExitStack) for the call: (graph key, nets, hints)."""
        nets, hints, key = [], [], []
        for c in self.chain:
            net = stack.enter_context(c.devices.use(c.handle))
            params = list(net.parameters())
            hints.append(c.hint_for(x.to(params[0].device), self.n, params[0].dtype))
            nets.append(net)
            key.append((id(net), params[0].data_ptr(), params[-1].data_ptr(), len(params), params[0].dtype,
                        c.strength, c.global_average_pooling))
        return ("control", self.n, *key), nets, hints

    def residuals(self, nets: list, hints: list[torch.Tensor], xc: torch.Tensor, timestep: torch.Tensor,
                  conds: dict, out_dtype: torch.dtype) -> dict:
        out = None
        for c, net, hint in zip(self.chain, nets, hints):
            out = add_residuals(c.residuals(net, hint, xc, timestep, conds, out_dtype), out)
        return out


__all__ = ["ControlNet", "ControlNetModule", "GraphedControl", "broadcast_hint", "controlnet_from_loaded", "controlnet_info",
           "previous_and_active", "random_controlnet", "upscale_hint"]
