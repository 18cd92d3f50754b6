"""Guidance as ComfyUI's guiders define it (comfy/samplers.py CFGGuider, comfy_extras/nodes_custom_sampler.py
Guider_Basic and Guider_DualCFG): named conditionings ("positive", "negative", "middle") and how their x0
predictions are combined at each model call.

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
            neg, mid, pos = calc_cond_batch(self.apply_fn, [negative, middle, positive], x, sigma)
            text = cfg_function(pos, mid, cfg1, x, sigma, mo)
            return neg + cfg2 * (text - neg)
        if not mo.get("disable_cfg1_optimization", False) and math.isclose(cfg2, 1.0):
            negative = None  # a scale of 1 needs no prediction of what it guides away from
            if math.isclose(cfg1, 1.0):
                middle = None
        neg, mid, pos = calc_cond_batch(self.apply_fn, [negative, middle, positive], x, sigma)
        return cfg_function(mid, neg, cfg2, x, sigma, mo) + (pos - mid) * cfg1
