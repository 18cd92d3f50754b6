"""Samplers, by family, and the registry of ComfyUI's sampler names (in ComfyUI's order).

    common       shared pieces: to_d, ancestral step split, noise, callbacks, the CFG++ uncond tap
    karras       euler, heun, heunpp2, dpm_2 (+ ancestral), lms, ddpm, lcm
    dpm_solver   dpm_fast, dpm_adaptive
    dpmpp        dpmpp_2s_ancestral, dpmpp_sde, dpmpp_2m, dpmpp_2m_sde (+ heun), dpmpp_3m_sde
    cfg_pp       euler / euler_ancestral / dpmpp_2s_ancestral / dpmpp_2m with CFG++
    multistep    ipndm, ipndm_v, deis, res_multistep (+ ancestral, CFG++), gradient_estimation (+ CFG++)
    exponential  exp_heun_2_x0 (+ sde), er_sde, seeds_2, seeds_3
    sa_solver    sa_solver, sa_solver_pece
    unipc        uni_pc, uni_pc_bh2
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from . import cfg_pp, dpm_solver, dpmpp, exponential, karras, multistep, sa_solver
from .common import get_ancestral_step, to_d
from .unipc import sample_unipc

__all__ = ["KSAMPLER_NAMES", "SAMPLERS", "SAMPLER_NAMES", "SamplerChoice", "get_ancestral_step", "get_sampler",
           "sampler_object", "to_d"]


def _sde_gpu(fn):
    """The *_gpu variants: the Brownian tree lives on the latent's device."""
    def sampler(model, x, sigmas, **kw):
        return fn(model, x, sigmas, cpu_noise=False, **kw)
    sampler.__name__ = fn.__name__ + "_gpu"
    sampler.__doc__ = (fn.__doc__ or "") + " (Brownian tree on the latent's device)"
    return sampler


def _uni_pc(variant: str):
    def sampler(model, x, sigmas, **kw):
        return sample_unipc(model, x, sigmas, variant=variant, **kw)
    sampler.__name__ = f"sample_unipc_{variant}"
    return sampler


# ComfyUI's KSAMPLER_NAMES, in its order, then "ddim" (euler with fresh inpaint noise, see pipeline) and UniPC.
SAMPLERS: dict[str, Callable[..., Any]] = {
    "euler": karras.sample_euler,
    "euler_cfg_pp": cfg_pp.sample_euler_cfg_pp,
    "euler_ancestral": karras.sample_euler_ancestral,
    "euler_ancestral_cfg_pp": cfg_pp.sample_euler_ancestral_cfg_pp,
    "heun": karras.sample_heun,
    "heunpp2": karras.sample_heunpp2,
    "exp_heun_2_x0": exponential.sample_exp_heun_2_x0,
    "exp_heun_2_x0_sde": exponential.sample_exp_heun_2_x0_sde,
    "dpm_2": karras.sample_dpm_2,
    "dpm_2_ancestral": karras.sample_dpm_2_ancestral,
    "lms": karras.sample_lms,
    "dpm_fast": dpm_solver.sample_dpm_fast,
    "dpm_adaptive": dpm_solver.sample_dpm_adaptive,
    "dpmpp_2s_ancestral": dpmpp.sample_dpmpp_2s_ancestral,
    "dpmpp_2s_ancestral_cfg_pp": cfg_pp.sample_dpmpp_2s_ancestral_cfg_pp,
    "dpmpp_sde": dpmpp.sample_dpmpp_sde,
    "dpmpp_sde_gpu": _sde_gpu(dpmpp.sample_dpmpp_sde),
    "dpmpp_2m": dpmpp.sample_dpmpp_2m,
    "dpmpp_2m_cfg_pp": cfg_pp.sample_dpmpp_2m_cfg_pp,
    "dpmpp_2m_sde": dpmpp.sample_dpmpp_2m_sde,
    "dpmpp_2m_sde_gpu": _sde_gpu(dpmpp.sample_dpmpp_2m_sde),
    "dpmpp_2m_sde_heun": dpmpp.sample_dpmpp_2m_sde_heun,
    "dpmpp_2m_sde_heun_gpu": _sde_gpu(dpmpp.sample_dpmpp_2m_sde_heun),
    "dpmpp_3m_sde": dpmpp.sample_dpmpp_3m_sde,
    "dpmpp_3m_sde_gpu": _sde_gpu(dpmpp.sample_dpmpp_3m_sde),
    "ddpm": karras.sample_ddpm,
    "lcm": karras.sample_lcm,
    "ipndm": multistep.sample_ipndm,
    "ipndm_v": multistep.sample_ipndm_v,
    "deis": multistep.sample_deis,
    "res_multistep": multistep.sample_res_multistep,
    "res_multistep_cfg_pp": multistep.sample_res_multistep_cfg_pp,
    "res_multistep_ancestral": multistep.sample_res_multistep_ancestral,
    "res_multistep_ancestral_cfg_pp": multistep.sample_res_multistep_ancestral_cfg_pp,
    "gradient_estimation": multistep.sample_gradient_estimation,
    "gradient_estimation_cfg_pp": multistep.sample_gradient_estimation_cfg_pp,
    "er_sde": exponential.sample_er_sde,
    "seeds_2": exponential.sample_seeds_2,
    "seeds_3": exponential.sample_seeds_3,
    "sa_solver": sa_solver.sample_sa_solver,
    "sa_solver_pece": sa_solver.sample_sa_solver_pece,
    "ddim": karras.sample_euler,
    "uni_pc": _uni_pc("bh1"),
    "uni_pc_bh2": _uni_pc("bh2"),
}
SAMPLER_NAMES = list(SAMPLERS)
KSAMPLER_NAMES = SAMPLER_NAMES[:-3]  # the k-diffusion samplers, whose options the sampler nodes may set


def get_sampler(name: str) -> Callable[..., torch.Tensor]:
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; expected one of {', '.join(SAMPLER_NAMES)}") from None


@dataclass
class SamplerChoice:
    """A sampler with its options: what ComfyUI's SAMPLER sockets carry (KSamplerSelect, SamplerEulerAncestral ...).
    random_inpaint_noise: re-noise the kept region of an inpainting mask with other noise than the
    initial noise (ComfyUI's "ddim")."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    random_inpaint_noise: bool = False

    def __post_init__(self) -> None:
        get_sampler(self.name)  # an unknown name fails here, not mid-run

    def __call__(self, model, x, sigmas, **kw) -> torch.Tensor:
        return get_sampler(self.name)(model, x, sigmas, **kw, **self.options)


def sampler_object(name: str) -> SamplerChoice:
    """ComfyUI's sampler_object: a sampler name as KSampler runs it ("ddim" is euler with fresh inpaint noise)."""
    if name == "ddim":
        return SamplerChoice("euler", random_inpaint_noise=True)
    return SamplerChoice(name)
