"""Conditioning and classifier-free guidance, as ComfyUI combines them.

A CONDITIONING is a list of [context [1, 77k, D], extras]. Before sampling each entry becomes a
CondEntry: its area (ConditioningSetArea: (h, w, y, x) in latent cells, or ("percentage", h, w, y, x)),
strength, mask (ConditioningSetMask), timestep range (start_percent / end_percent) and the tensors
the model takes besides x (SDXL pooled output and size ids, an inpainting U-Net's concat channels).

At every model call (calc_cond_batch) each active entry predicts x0 on its area; the predictions of
one side (positive or negative) are averaged with weights mult = strength * mask (areas without a
mask get an 8-cell feathered edge), so several prompts blend where their areas overlap. Entries
whose inputs have compatible shapes run in ONE forward: plain cond + uncond is a batch of 2B.
CFG then mixes the two sides: uncond + cfg * (cond - uncond), skipping uncond when cfg == 1.
"""
from __future__ import annotations

import math
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from nodegraph import repeat_to_batch

from .. import cuda_graphs, unet_patches
from ..controlnet import GraphedControl
from .schedules import ModelSampling

ApplyFn = Callable[[torch.Tensor, torch.Tensor, dict], torch.Tensor]  # (x, sigma[B], conds) -> x0
FEATHER = 8  # latent cells of soft edge around an area without a mask


@dataclass
class CondEntry:
    """One entry of a CONDITIONING, resolved for one sampling run."""

    context: torch.Tensor  # [b, T, D] text states
    extras: dict  # the entry's extras as given
    model_conds: dict[str, torch.Tensor] = field(default_factory=dict)  # per-entry model inputs (not spatial)
    concat: torch.Tensor | None = None  # [B, c, h, w] spatial model input (inpainting U-Net), cropped per area
    area: tuple[int, int, int, int] | None = None  # (h, w, y, x) latent cells
    strength: float = 1.0
    mask: torch.Tensor | None = None  # [b, h, w] at latent resolution
    mask_strength: float = 1.0
    sigma_start: float | None = None  # active while sigma <= sigma_start
    sigma_end: float | None = None  # ... and sigma >= sigma_end
    control: Any = None
    gligen: tuple | None = None  # GLIGENTextBoxApply's ("position", GligenRef, boxes)


# =============================================================================================
# Preparation (once per sampling run)
# =============================================================================================

def _mask_bounds(mask: torch.Tensor) -> tuple[int, int, int, int]:
    """(h, w, y, x) of the non-zero cells of any mask in the batch, at least 8x8 (ComfyUI)."""
    bounds = mask.abs().amax(dim=0)
    if not torch.any(bounds != 0):
        return (8, 8, 0, 0)
    ys, xs = torch.where(bounds != 0)
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
    return (max(8, y1 - y0 + 1), max(8, x1 - x0 + 1), y0, x0)


def prepare_conds(conditioning: Sequence, model, ms: ModelSampling, noise: torch.Tensor,
                  latent_image: torch.Tensor | None = None, denoise_mask: torch.Tensor | None = None,
                  seed: int | None = None, prompt_type: str = "") -> list[CondEntry]:
    """CONDITIONING -> CondEntries for a latent of noise's shape (model space latent_image); seed: the
    sampler's (unCLIP's noise augmentation draws from it); prompt_type: the side ("positive", "negative"),
    as ComfyUI's encode_model_conds passes it (the SDXL refiner's default aesthetic score depends on it)."""
    b, _, h, w = noise.shape
    device = noise.device
    downscale = getattr(getattr(model, "latent_format", None), "downscale", 8)
    out = []
    for item in conditioning or []:
        context, extras = item[0], dict(item[1] if len(item) > 1 and item[1] is not None else {})
        entry = CondEntry(context=context.to(device=device, dtype=torch.float32), extras=extras)
        area = extras.get("area")
        if area is not None:
            if area[0] == "percentage":
                area = (max(1, round(area[1] * h)), max(1, round(area[2] * w)), round(area[3] * h), round(area[4] * w))
            entry.area = tuple(int(v) for v in area)
        entry.strength = float(extras.get("strength", 1.0))
        if extras.get("mask") is not None:
            mask = extras["mask"].to(device=device, dtype=torch.float32)
            if mask.ndim == 2:
                mask = mask.unsqueeze(0)
            if mask.shape[1:] != (h, w):
                mask = F.interpolate(mask.unsqueeze(1), size=(h, w), mode="bilinear", align_corners=False).squeeze(1)
            if extras.get("set_area_to_bounds", False):
                entry.area = _mask_bounds(mask)
            entry.mask = mask
            entry.mask_strength = float(extras.get("mask_strength", 1.0))
        if "start_percent" in extras:
            entry.sigma_start = ms.percent_to_sigma(float(extras["start_percent"]))
        if "end_percent" in extras:
            entry.sigma_end = ms.percent_to_sigma(float(extras["end_percent"]))
        entry.control = extras.get("control")
        entry.gligen = extras.get("gligen")
        _encode_model_conds(entry, model, noise, latent_image, denoise_mask, downscale, seed, prompt_type)
        out.append(entry)
    return out


def _encode_model_conds(entry: CondEntry, model, noise, latent_image, denoise_mask, downscale: int,
                        seed: int | None = None, prompt_type: str = "") -> None:
    """What the model needs besides x and context, as ComfyUI's extra_conds builds it."""
    extras, device = entry.extras, noise.device
    if getattr(model, "adm", False):  # SDXL: pooled text embedding + size/crop ids
        sizes = dict(extras)
        sizes.setdefault("width", noise.shape[3] * downscale)  # defaults: the latent's pixel size
        sizes.setdefault("height", noise.shape[2] * downscale)
        sizes.setdefault("prompt_type", prompt_type)
        pooled = extras.get("pooled_output")
        if pooled is not None:
            entry.model_conds["pooled_output"] = pooled.to(device=device, dtype=torch.float32)
        entry.model_conds["time_ids"] = model.sdxl_time_ids(sizes, 1, device)
    if getattr(model, "inpaint", False):  # 9-channel U-Net: mask + masked image latent
        image, mask = latent_image, denoise_mask
        if extras.get("concat_latent_image") is not None:  # InpaintModelConditioning
            image = model.latent_format.process_in(extras["concat_latent_image"].to(device=device, dtype=torch.float32))
            mask = extras.get("concat_mask", denoise_mask)
            if mask is not None:
                mask = mask.to(device=device, dtype=torch.float32)
        entry.concat = model.inpaint_concat(noise, image, mask)
    if getattr(model, "ip2p", False):  # InstructPixToPixConditioning's source image, raw latent
        image = extras.get("concat_latent_image")
        entry.concat = model.ip2p_concat(noise, None if image is None else image.to(device=device, dtype=torch.float32))
    if getattr(model, "unclip", False):  # unCLIPConditioning's image embeddings -> class-embedding input
        entry.model_conds["y"] = model.unclip_y(extras.get("unclip_conditioning"), device, seed)


def _area_inside(a, outer) -> bool:
    return a[2] >= outer[2] and a[3] >= outer[3] and a[0] + a[2] <= outer[0] + outer[2] and a[1] + a[3] <= outer[1] + outer[3]


def add_matching_areas(conds: list[CondEntry], other: list[CondEntry]) -> None:
    """For each area entry of `other`, give `conds` an entry on the same area (its text taken from the
    smallest of `conds`' entries covering it), so guidance compares like with like (ComfyUI)."""
    for c in list(other):
        if c.area is None:
            continue
        smallest = None
        for x in conds:
            if x.area is not None:
                if _area_inside(c.area, x.area):
                    if smallest is None or smallest.area is None or smallest.area[0] * smallest.area[1] > x.area[0] * x.area[1]:
                        smallest = x
            elif smallest is None:
                smallest = x
        if smallest is None or (smallest.area is not None and smallest.area == c.area):
            continue
        conds.append(replace(c, context=smallest.context, model_conds=dict(smallest.model_conds),
                             concat=smallest.concat))


def share_control_with_uncond(positive: list[CondEntry], negative: list[CondEntry]) -> None:
    """Legacy ControlNetApply marks its control 'control_apply_to_uncond': negative entries without a
    control (and without an area) then get the positive's controls, as in ComfyUI."""
    controls = [c.control for c in positive if c.area is None and c.control is not None
                and c.extras.get("control_apply_to_uncond", False)]
    if not controls or any(c.control is not None for c in negative if c.area is None):
        return
    plain = [i for i, c in enumerate(negative) if c.area is None]
    for k, control in enumerate(controls if plain else []):
        i = plain[k % len(plain)]
        negative[i] = replace(negative[i], control=control)


def unique_controls(*sides: Sequence[CondEntry]) -> list:
    """The distinct control objects of the entries (each once, in order)."""
    seen: dict[int, Any] = {}
    for entries in sides:
        for entry in entries or []:
            if entry.control is not None:
                seen.setdefault(id(entry.control), entry.control)
    return list(seen.values())


# =============================================================================================
# Per model call
# =============================================================================================

@dataclass
class _Chunk:
    input_x: torch.Tensor
    mult: torch.Tensor
    conds: dict
    area: tuple | None
    control: Any
    side: int  # index into the list of sides (0 = positive, 1 = negative)
    gligen: tuple | None = None


def _feather(mult: torch.Tensor, area: tuple, full: tuple[int, int]) -> None:
    for i in range(2):
        size, offset = area[i], area[2 + i]
        rr = min(FEATHER, mult.shape[2 + i] // 4)
        if offset != 0:
            for t in range(rr):
                mult.narrow(i + 2, t, 1).mul_((t + 1) / rr)
        if size + offset < full[i]:
            for t in range(rr):
                mult.narrow(i + 2, size - 1 - t, 1).mul_((t + 1) / rr)


def _chunk(entry: CondEntry, x: torch.Tensor, sigma: torch.Tensor, side: int) -> _Chunk | None:
    if entry.sigma_start is not None or entry.sigma_end is not None:  # only then read sigma on the host
        s0 = float(sigma[0])
        if entry.sigma_start is not None and s0 > entry.sigma_start:
            return None
        if entry.sigma_end is not None and s0 < entry.sigma_end:
            return None
    batch = x.shape[0]
    area, input_x = None, x
    if entry.area is not None:
        h, w, y, xo = entry.area
        h, w = min(x.shape[2] - y, h), min(x.shape[3] - xo, w)
        area = (h, w, y, xo)
        input_x = x[:, :, y:y + h, xo:xo + w]
    if entry.mask is not None:
        mask = entry.mask[:batch]
        if area is not None:
            mask = mask[:, area[2]:area[2] + area[0], area[3]:area[3] + area[1]]
        mask = (mask * entry.mask_strength).unsqueeze(1)
        mult = mask.repeat(batch // mask.shape[0], input_x.shape[1], 1, 1) * entry.strength
    else:
        mult = torch.ones_like(input_x) * entry.strength
        if area is not None:
            _feather(mult, area, (x.shape[2], x.shape[3]))
    conds = {"context": repeat_to_batch(entry.context, batch)}
    for key, value in entry.model_conds.items():
        conds[key] = repeat_to_batch(value, batch)
    if entry.concat is not None:
        concat = entry.concat
        if area is not None:
            concat = concat[:, :, area[2]:area[2] + area[0], area[3]:area[3] + area[1]]
        conds["concat"] = repeat_to_batch(concat, batch)
    return _Chunk(input_x, mult, conds, area, entry.control, side, entry.gligen)


def _compatible(a: _Chunk, b: _Chunk) -> bool:
    if (a.input_x.shape != b.input_x.shape or a.control is not b.control or a.gligen is not b.gligen
            or a.conds.keys() != b.conds.keys()):
        return False
    for key, va in a.conds.items():
        vb = b.conds[key]
        if key == "context":
            if va.shape[0] != vb.shape[0] or va.shape[2] != vb.shape[2]:
                return False
            if math.lcm(va.shape[1], vb.shape[1]) // min(va.shape[1], vb.shape[1]) > 4:
                return False
        elif va.shape != vb.shape:
            return False
    return True


def _cat_conds(conds: list[dict]) -> dict:
    """Batch the chunks' model inputs; contexts of different lengths are tiled to a common length,
    which leaves attention unchanged (every key repeated equally often)."""
    out = {}
    for key in conds[0]:
        values = [c[key] for c in conds]
        if key == "context":
            length = 1
            for v in values:
                length = math.lcm(length, v.shape[1])
            values = [v.repeat(1, length // v.shape[1], 1) if v.shape[1] < length else v for v in values]
        out[key] = torch.cat(values)
    return out


DEFERRED_CONTROL = "~control"  # a batch's ControlNet chain, left to ModelDenoiser (GraphedControl)

_OOM = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def _predict(apply_fn: ApplyFn, batch: list[_Chunk], sigma: torch.Tensor,
             transformer_options: dict | None = None) -> list[tuple[_Chunk, torch.Tensor]]:
    """x0 of every chunk, in one forward; if that does not fit in memory, in halves (ComfyUI sizes
    its batches from a memory estimate up front, we just try)."""
    n = len(batch)
    input_x = torch.cat([c.input_x for c in batch])
    conds = _cat_conds([c.conds for c in batch])
    sigma_ = torch.cat([sigma] * n)
    if transformer_options is not None:  # U-Net patches; they see which chunk is which side, as in ComfyUI
        conds["transformer_options"] = {**transformer_options, "cond_or_uncond": [c.side for c in batch],
                                        "sigmas": sigma_}
    try:
        if batch[0].control is not None:  # ControlNet: residuals for this batch (None outside its steps)
            if isinstance(apply_fn, ModelDenoiser) and apply_fn.takes_control(batch[0].control):
                conds[DEFERRED_CONTROL] = GraphedControl(batch[0].control, n)  # run by the denoiser, graphed
            else:
                conds.update(batch[0].control.get_control(input_x, sigma_, conds, n) or {})
        if batch[0].gligen is not None:  # GLIGEN boxes: the fusers as a middle patch (ComfyUI's cond patches)
            kind, ref, params = batch[0].gligen
            with ref.middle_patch(kind, params, input_x.shape, input_x.device) as patch:
                options = dict(conds.get("transformer_options") or {"cond_or_uncond": [c.side for c in batch],
                                                                      "sigmas": sigma_})
                patches = dict(options.get("patches", {}))
                patches["middle_patch"] = list(patches.get("middle_patch", [])) + [patch]
                options["patches"] = patches
                conds["transformer_options"] = options
                return list(zip(batch, apply_fn(input_x, sigma_, conds).chunk(n)))
        return list(zip(batch, apply_fn(input_x, sigma_, conds).chunk(n)))
    except _OOM:
        if n == 1:
            raise
    # out of the except block, so the failed attempt's activations (held by the traceback) are freed
    del input_x, conds
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return (_predict(apply_fn, batch[: n // 2], sigma, transformer_options)
            + _predict(apply_fn, batch[n // 2:], sigma, transformer_options))


def calc_cond_batch(apply_fn: ApplyFn, sides: Sequence[Sequence[CondEntry] | None], x: torch.Tensor,
                    sigma: torch.Tensor, model_options: dict | None = None) -> list[torch.Tensor]:
    """The weighted average x0 prediction of each side, running compatible chunks in one forward.
    model_options' "transformer_options" (U-Net patches) go to the model with each batch."""
    transformer_options = (model_options or {}).get("transformer_options") or None
    wrapper = (model_options or {}).get("model_function_wrapper")
    if wrapper is not None:  # ComfyUI's unet wrapper: it also sees which chunk is which side
        apply_fn = _wrapped_apply(apply_fn, wrapper)
        transformer_options = transformer_options or {}
    outs = [torch.zeros_like(x) for _ in sides]
    counts = [torch.ones_like(x) * 1e-37 for _ in sides]
    to_run: list[_Chunk] = []
    for side, entries in enumerate(sides):
        for entry in entries or []:
            chunk = _chunk(entry, x, sigma, side)
            if chunk is not None:
                to_run.append(chunk)
    while to_run:
        first = to_run[0]
        picked = [i for i, c in enumerate(to_run) if _compatible(c, first)]
        batch = [to_run[i] for i in reversed(picked)]  # ComfyUI's order: last first
        taken = set(picked)
        to_run = [c for i, c in enumerate(to_run) if i not in taken]
        for c, pred in _predict(apply_fn, batch, sigma, transformer_options):
            out, cnt = outs[c.side], counts[c.side]
            if c.area is not None:
                h, w, y, xo = c.area
                out, cnt = out[:, :, y:y + h, xo:xo + w], cnt[:, :, y:y + h, xo:xo + w]
            out += pred * c.mult
            cnt += c.mult
    return [o / c for o, c in zip(outs, counts)]


def _wrapped_apply(apply_fn: ApplyFn, wrapper: Callable) -> ApplyFn:
    """ComfyUI's model_options["model_function_wrapper"]: wrapper(apply_model, {"input", "timestep", "c",
    "cond_or_uncond"}) -> x0, where apply_model(input, timestep, **c) is the model call it wraps. The text
    states are in c under ComfyUI's name "c_crossattn" too, and a wrapper may replace them there."""
    def call(x: torch.Tensor, sigma: torch.Tensor, conds: dict) -> torch.Tensor:
        def apply_model(input_x: torch.Tensor, timestep: torch.Tensor, **c: Any) -> torch.Tensor:
            if "c_crossattn" in c:
                c["context"] = c.pop("c_crossattn")
            return apply_fn(input_x, timestep, c)
        sides = list((conds.get("transformer_options") or {}).get("cond_or_uncond", []))
        c = {**conds, "c_crossattn": conds["context"]}
        return wrapper(apply_model, {"input": x, "timestep": sigma, "c": c, "cond_or_uncond": sides})
    return call


class ModelDenoiser:
    """A DiffusionModel as D(x, sigma, conds) -> x0: c_in scaling, sigma -> timestep, eps/v -> x0."""

    def __init__(self, model, ms: ModelSampling, check_interrupt: Callable[[], None] | None = None) -> None:
        self.model, self.ms, self.check_interrupt = model, ms, check_interrupt
        self.calls = 0  # forwards run (tests, benchmarks)
        self.graphs = cuda_graphs.runner_for(getattr(model, "unet", None))  # None off CUDA / when turned off

    def takes_control(self, control) -> bool:
        """Whether this denoiser runs `control` itself, inside the U-Net's CUDA graph."""
        return self.graphs is not None and cuda_graphs.enabled() and GraphedControl.supports(control, self.ms)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, conds: dict) -> torch.Tensor:
        if self.check_interrupt is not None:
            self.check_interrupt()
        self.calls += 1
        extras = {k: v for k, v in conds.items() if k not in ("context", DEFERRED_CONTROL)}
        xc = self.ms.calculate_input(sigma, x)
        timestep = self.ms.timestep(sigma)
        patched = unet_patches.has_patches(extras.get("transformer_options"))
        with ExitStack() as stack:
            control = conds.get(DEFERRED_CONTROL)
            if control is not None:
                key, nets, hints = control.held(stack, x)
                control = cuda_graphs.ControlCall(key, hints, partial(control.residuals, nets))
            out = cuda_graphs.graphed_apply(self.graphs, self.model, xc, timestep, conds["context"], extras,
                                            patched, control=control).float()
        return self.ms.calculate_denoised(sigma, out, x)


def merge_model_options(own: dict, sampler: dict | None) -> dict:
    """The model's options plus a sampler's own hooks (the CFG++ samplers read the uncond prediction)."""
    if not sampler:
        return own
    post = list(own.get("sampler_post_cfg_function", [])) + list(sampler.get("sampler_post_cfg_function", []))
    return {**own, **sampler, "sampler_post_cfg_function": post}


def cfg_function(cond_pred: torch.Tensor, uncond_pred: torch.Tensor, cfg: float, x: torch.Tensor,
                 sigma: torch.Tensor, model_options: dict, *, model: ApplyFn | None = None,
                 cond: list[CondEntry] | None = None, uncond: list[CondEntry] | None = None) -> torch.Tensor:
    """ComfyUI's cfg_function: uncond + cfg (cond - uncond), or the model's "sampler_cfg_function", then
    every "sampler_post_cfg_function" on the result. The hooks get ComfyUI's args; "model" is the x0
    predictor they may call again through calc_cond_batch(model, [cond], x, sigma, model_options)."""
    mo = model_options
    if "sampler_cfg_function" in mo:
        args = {"cond": x - cond_pred, "uncond": x - uncond_pred, "cond_scale": cfg, "timestep": sigma,
                "input": x, "sigma": sigma, "cond_denoised": cond_pred, "uncond_denoised": uncond_pred,
                "model": model, "model_options": mo, "input_cond": cond, "input_uncond": uncond}
        result = x - mo["sampler_cfg_function"](args)
    else:
        result = uncond_pred + (cond_pred - uncond_pred) * cfg
    for fn in mo.get("sampler_post_cfg_function", []):
        result = fn({"denoised": result, "cond": cond, "uncond": uncond, "cond_scale": cfg, "model": model,
                     "uncond_denoised": uncond_pred, "cond_denoised": cond_pred, "sigma": sigma,
                     "model_options": mo, "input": x})
    return result


class CFGDenoiser:
    """The guided x0 predictor the samplers call: model(x, sigma) -> x0.

    model_options (ComfyUI's hooks, set by the model-patch nodes): "sampler_cfg_function" (args -> noise
    prediction to subtract from x), "sampler_post_cfg_function" (list of args -> x0),
    "disable_cfg1_optimization", "transformer_options" (U-Net patches, see unet_patches.py).
    """

    def __init__(self, apply_fn: ApplyFn, positive: list[CondEntry], negative: list[CondEntry] | None, cfg: float,
                 model_options: dict | None = None) -> None:
        self.apply_fn, self.positive, self.negative = apply_fn, positive, negative
        self.cfg = float(cfg)
        self.model_options = dict(model_options or {})

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, model_options: dict | None = None,
                 **_: Any) -> torch.Tensor:
        mo = merge_model_options(self.model_options, model_options)
        skip_uncond = math.isclose(self.cfg, 1.0) and not mo.get("disable_cfg1_optimization", False)
        uncond = None if skip_uncond else self.negative
        cond_pred, uncond_pred = calc_cond_batch(self.apply_fn, [self.positive, uncond], x, sigma, mo)
        for fn in mo.get("sampler_pre_cfg_function", []):  # ComfyUI's hooks between the predictions and CFG
            cond_pred, uncond_pred = fn({"conds": [self.positive, uncond], "conds_out": [cond_pred, uncond_pred],
                                         "cond_scale": self.cfg, "timestep": sigma, "input": x, "sigma": sigma,
                                         "model": self.apply_fn, "model_options": mo})[:2]
        return cfg_function(cond_pred, uncond_pred, self.cfg, x, sigma, mo, model=self.apply_fn,
                            cond=self.positive, uncond=uncond)


class InpaintDenoiser:
    """ComfyUI's KSamplerX0Inpaint: where denoise_mask is 0 the latent is kept. Before each call the
    kept region is re-noised to the current sigma (latent + noise * sigma); after it the prediction
    there is replaced by the original latent."""

    def __init__(self, inner: Callable[..., torch.Tensor], latent_image: torch.Tensor, noise: torch.Tensor,
                 denoise_mask: torch.Tensor | None) -> None:
        self.inner, self.latent_image, self.noise, self.mask = inner, latent_image, noise, denoise_mask

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **kw: Any) -> torch.Tensor:
        if self.mask is None:
            return self.inner(x, sigma, **kw)
        mask = self.mask
        mask_function = getattr(self, "mask_function", None)  # ComfyUI's model_options["denoise_mask_function"]
        if mask_function is not None:
            mask = mask_function(sigma, mask, extra_options={"model": self.inner, "sigmas": getattr(self, "sigmas", None)})
        keep = 1.0 - mask
        s = sigma.reshape([sigma.shape[0]] + [1] * (self.noise.ndim - 1))
        x = x * mask + (self.latent_image + self.noise * s) * keep
        out = self.inner(x, sigma, **kw)
        return out * mask + self.latent_image * keep
