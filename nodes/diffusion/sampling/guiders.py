"""Guidance as ComfyUI's guiders define it (comfy/samplers.py CFGGuider, comfy_extras/nodes_custom_sampler.py
Guider_Basic and Guider_DualCFG, comfy_extras/nodes_perpneg.py Guider_PerpNeg): named conditionings ("positive",
"negative", "middle", "empty_negative_prompt") and how their x0 predictions are combined at each model call.

A guidance object is plain data (conditionings and scales); `denoiser(apply_fn, sides, model_options)` gives
the x0 predictor for one run once the pipeline has prepared each side's CondEntry list.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .guidance import ApplyFn, CFGDenoiser, CondEntry, calc_cond_batch, cfg_function, merge_model_options


@dataclass
class CFGGuidance:
    """Classifier-free guidance: uncond + cfg (cond - uncond). Without a negative (BasicGuider) the
    uncond prediction is zero and cfg is 1: the positive's x0."""

    positive: list
    negative: list | None = None
    cfg: float = 1.0

    @property
    def conds(self) -> dict[str, list]:
        return {"positive": self.positive} if self.negative is None else {"positive": self.positive,
                                                                        "negative": self.negative}

    def denoiser(self, apply_fn: ApplyFn, sides: dict[str, list[CondEntry]], model_options: dict | None):
        return CFGDenoiser(apply_fn, sides["positive"], sides.get("negative"), self.cfg, model_options)


@dataclass
class DualCFGGuidance:
    """Two guidance scales: cond1 over cond2 (cfg_conds) and cond2 over the negative (cfg_cond2_negative).
    "regular" adds them; "nested" guides cond1 over cond2 first, then that over the negative."""

    cond1: list
    cond2: list
    negative: list
    cfg_conds: float = 8.0
    cfg_cond2_negative: float = 8.0
    nested: bool = False

    @property
    def conds(self) -> dict[str, list]:
        return {"positive": self.cond1, "middle": self.cond2, "negative": self.negative}

    def denoiser(self, apply_fn: ApplyFn, sides: dict[str, list[CondEntry]], model_options: dict | None):
        return DualCFGDenoiser(apply_fn, sides, self, model_options)


class DualCFGDenoiser:
    def __init__(self, apply_fn: ApplyFn, sides: dict[str, list[CondEntry]], guidance: DualCFGGuidance,
                 model_options: dict | None) -> None:
        self.apply_fn, self.sides, self.g = apply_fn, sides, guidance
        self.model_options = dict(model_options or {})

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, model_options: dict | None = None,
                 **_: Any) -> torch.Tensor:
        mo = merge_model_options(self.model_options, model_options)
        negative, middle, positive = self.sides["negative"], self.sides["middle"], self.sides["positive"]
        cfg1, cfg2 = self.g.cfg_conds, self.g.cfg_cond2_negative
        if self.g.nested:
            neg, mid, pos = calc_cond_batch(self.apply_fn, [negative, middle, positive], x, sigma, mo)
            text = cfg_function(pos, mid, cfg1, x, sigma, mo, model=self.apply_fn, cond=positive, uncond=middle)
            return neg + cfg2 * (text - neg)
        if not mo.get("disable_cfg1_optimization", False) and math.isclose(cfg2, 1.0):
            negative = None  # a scale of 1 needs no prediction of what it guides away from
            if math.isclose(cfg1, 1.0):
                middle = None
        neg, mid, pos = calc_cond_batch(self.apply_fn, [negative, middle, positive], x, sigma, mo)
        return (cfg_function(mid, neg, cfg2, x, sigma, mo, model=self.apply_fn, cond=middle, uncond=negative)
                + (pos - mid) * cfg1)


def perp_neg(x: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, nocond: torch.Tensor, neg_scale: float,
             cond_scale: float) -> torch.Tensor:
    """Perp-Neg (Armandpour et al. 2023) as ComfyUI computes it (comfy_extras/nodes_perpneg.py): the negative's
    direction from the empty prompt, less its projection on the positive's (one projection over the whole
    batch), is pushed away from."""
    pos, neg = pos - nocond, neg - nocond
    perp = neg - (torch.mul(neg, pos).sum() / torch.norm(pos) ** 2) * pos
    return nocond + cond_scale * (pos - perp * neg_scale)


@dataclass
class PerpNegGuidance:
    """ComfyUI's Guider_PerpNeg: CFG from the empty prompt towards the positive, away from the part of the
    negative that is perpendicular to the positive."""

    positive: list
    negative: list
    empty: list
    cfg: float = 8.0
    neg_scale: float = 1.0

    @property
    def conds(self) -> dict[str, list]:
        return {"positive": self.positive, "negative": self.negative, "empty_negative_prompt": self.empty}

    def denoiser(self, apply_fn: ApplyFn, sides: dict[str, list[CondEntry]], model_options: dict | None):
        return PerpNegDenoiser(apply_fn, sides, self, model_options)


class PerpNegDenoiser:
    def __init__(self, apply_fn: ApplyFn, sides: dict[str, list[CondEntry]], guidance: PerpNegGuidance,
                 model_options: dict | None) -> None:
        self.apply_fn, self.sides, self.g = apply_fn, sides, guidance
        self.model_options = dict(model_options or {})

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, model_options: dict | None = None,
                 **_: Any) -> torch.Tensor:
        mo = merge_model_options(self.model_options, model_options)
        positive, negative, empty = (self.sides["positive"], self.sides["negative"],
                                     self.sides["empty_negative_prompt"])
        if not mo.get("disable_cfg1_optimization", False) and math.isclose(self.g.neg_scale, 0.0):
            negative = None
            if math.isclose(self.g.cfg, 1.0):
                empty = None
        pos, neg, nocond = calc_cond_batch(self.apply_fn, [positive, negative, empty], x, sigma, mo)
        result = perp_neg(x, pos, neg, nocond, self.g.neg_scale, self.g.cfg)
        # one batch for the three predictions instead of cfg_function's two: its post-CFG hooks run here
        for fn in mo.get("sampler_post_cfg_function", []):
            result = fn({"denoised": result, "cond": positive, "uncond": negative, "cond_scale": self.g.cfg,
                         "model": self.apply_fn, "uncond_denoised": neg, "cond_denoised": pos, "sigma": sigma,
                         "model_options": mo, "input": x, "empty_cond": empty, "empty_cond_denoised": nocond})
        return result
