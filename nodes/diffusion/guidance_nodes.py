"""ComfyUI's guidance patches: how a MODEL's cond and uncond predictions are combined at each step.

    RescaleCFG            comfy_extras/nodes_model_advanced.py (Lin et al. 2024, section 3.4)
    CFGZeroStar, CFGNorm  comfy_extras/nodes_cfg.py
    PerpNeg, PerpNegGuider  comfy_extras/nodes_perpneg.py (Armandpour et al. 2023)

The MODEL nodes return a new handle whose model options carry a CFG function ("sampler_cfg_function": args
-> the noise to subtract from x) or a post-CFG function ("sampler_post_cfg_function": args -> x0), with
ComfyUI's args (sampling/guidance.py cfg_function); the shared model is unchanged.
"""
from __future__ import annotations

import torch

from nodegraph import CONDITIONING, MODEL, Float, Input, Output, node

from .custom_sampler_nodes import Guider
from .model_options import add_post_cfg_function, patched, set_cfg_function
from .sampling import PerpNegGuidance, calc_cond_batch, prepare_conds
from .sampling.guiders import perp_neg
from .sampling_types import GUIDER

__all__ = ["CFGNorm", "CFGZeroStar", "PerpNeg", "PerpNegGuider", "RescaleCFG"]


def rescale_cfg(args: dict, multiplier: float) -> torch.Tensor:
    """CFG done on the v prediction, its std rescaled to the cond's (ComfyUI's RescaleCFG, for eps-style x)."""
    cond, uncond, cond_scale, x_orig = args["cond"], args["uncond"], args["cond_scale"], args["input"]
    sigma = args["sigma"]
    sigma = sigma.view(sigma.shape[:1] + (1,) * (cond.ndim - 1))
    x = x_orig / (sigma * sigma + 1.0)
    cond = ((x - (x_orig - cond)) * (sigma ** 2 + 1.0) ** 0.5) / sigma
    uncond = ((x - (x_orig - uncond)) * (sigma ** 2 + 1.0) ** 0.5) / sigma
    x_cfg = uncond + cond_scale * (cond - uncond)
    ro_pos = torch.std(cond, dim=(1, 2, 3), keepdim=True)
    ro_cfg = torch.std(x_cfg, dim=(1, 2, 3), keepdim=True)
    x_final = multiplier * (x_cfg * (ro_pos / ro_cfg)) + (1.0 - multiplier) * x_cfg
    return x_orig - (x - x_final * sigma / (sigma * sigma + 1.0) ** 0.5)


@node(category="advanced/model")
class RescaleCFG:
    """Rescale the classifier-free guidance result towards the cond prediction's spread (against over-exposure
    at high cfg, zero-terminal-SNR models)."""
    inputs = [Input("model", MODEL), Float("multiplier", 0.7, min=0.0, max=1.0, step=0.01)]
    outputs = [Output("MODEL", MODEL)]

    def run(self, ctx, model, multiplier):
        if multiplier == 0:  # x_final = x_cfg: the v-space round trip is the identity, plain CFG it is
            return (patched(model),)
        return (patched(model, lambda o: set_cfg_function(o, lambda args: rescale_cfg(args, multiplier))),)


def cfg_zero_star_scale(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """CFG-Zero*'s per-sample projection coefficient <v_cond, v_uncond> / |v_uncond|² (Fan et al. 2025)."""
    p, n = positive.reshape(positive.shape[0], -1), negative.reshape(negative.shape[0], -1)
    st = torch.sum(p * n, dim=1, keepdim=True) / (torch.sum(n ** 2, dim=1, keepdim=True) + 1e-8)
    return st.reshape([positive.shape[0]] + [1] * (positive.ndim - 1))


def _cfg_zero_star(args: dict) -> torch.Tensor:
    x, cond_p, uncond_p, scale = args["input"], args["cond_denoised"], args["uncond_denoised"], args["cond_scale"]
    alpha = cfg_zero_star_scale(x - cond_p, x - uncond_p)
    return args["denoised"] + uncond_p * (alpha - 1.0) + scale * uncond_p * (1.0 - alpha)


@node(category="advanced/guidance")
class CFGZeroStar:
    """CFG-Zero*: the uncond prediction scaled by its optimal projection onto the cond before guidance."""
    inputs = [Input("model", MODEL)]
    outputs = [Output("patched_model", MODEL)]

    def run(self, ctx, model):
        return (patched(model, lambda o: add_post_cfg_function(o, _cfg_zero_star)),)


@node(category="advanced/guidance")
class CFGNorm:
    """Limit the guided prediction's channel norm to the cond prediction's, times strength."""
    inputs = [Input("model", MODEL), Float("strength", 1.0, min=0.0, max=100.0, step=0.01)]
    outputs = [Output("patched_model", MODEL)]

    def run(self, ctx, model, strength):
        def cfg_norm(args):
            cond_p, pred = args["cond_denoised"], args["denoised"]
            norm_cond = torch.norm(cond_p, dim=1, keepdim=True)
            norm_pred = torch.norm(pred, dim=1, keepdim=True)
            return pred * (norm_cond / (norm_pred + 1e-8)).clamp(min=0.0, max=1.0) * strength
        return (patched(model, lambda o: add_post_cfg_function(o, cfg_norm)),)


@node(category="_for_testing", display_name="Perp-Neg (DEPRECATED by PerpNegGuider)")
class PerpNeg:
    """Perp-Neg as a model patch: guidance from the empty prompt, away from the negative's part perpendicular
    to the positive. Costs a third model call per step; PerpNegGuider batches the three."""
    inputs = [Input("model", MODEL), Input("empty_conditioning", CONDITIONING),
              Float("neg_scale", 1.0, min=0.0, max=100.0, step=0.01)]
    outputs = [Output("MODEL", MODEL)]

    def run(self, ctx, model, empty_conditioning, neg_scale):
        def cfg_function(args):
            denoiser, x, sigma = args["model"], args["input"], args["sigma"]
            nocond = prepare_conds(empty_conditioning, denoiser.model, denoiser.ms, x)
            (nocond_pred,) = calc_cond_batch(denoiser, [nocond], x, sigma, args["model_options"])
            return x - perp_neg(x, args["cond_denoised"], args["uncond_denoised"], nocond_pred, neg_scale,
                                args["cond_scale"])
        return (patched(model, lambda o: set_cfg_function(o, cfg_function)),)


@node(category="_for_testing")
class PerpNegGuider:
    """Perp-Neg guidance with positive, negative and empty prompts predicted in one batch."""
    inputs = [Input("model", MODEL), Input("positive", CONDITIONING), Input("negative", CONDITIONING),
              Input("empty_conditioning", CONDITIONING), Float("cfg", 8.0, min=0.0, max=100.0, step=0.1),
              Float("neg_scale", 1.0, min=0.0, max=100.0, step=0.01)]
    outputs = [Output("GUIDER", GUIDER)]

    def run(self, ctx, model, positive, negative, empty_conditioning, cfg, neg_scale):
        return (Guider(model, PerpNegGuidance(positive, negative, empty_conditioning, cfg, neg_scale)),)
