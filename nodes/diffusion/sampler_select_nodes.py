"""SAMPLER nodes of ComfyUI's custom sampling (comfy_extras/nodes_custom_sampler.py): KSamplerSelect by name,
and the nodes that set a sampler's options (eta, s_noise, order ...). Names, inputs and defaults are ComfyUI's."""
from __future__ import annotations

from nodegraph import MODEL, Boolean, Choice, Float, Input, Int, Output, node

from .model_options import model_sampling
from .sampling import SAMPLER_NAMES, SamplerChoice, sampler_object
from .sampling.samplers.sa_solver import tau_interval
from .sampling_types import SAMPLER

__all__ = ["KSamplerSelect", "SamplerDPMAdaptative", "SamplerDPMPP_2M_SDE", "SamplerDPMPP_2S_Ancestral",
           "SamplerDPMPP_3M_SDE", "SamplerDPMPP_SDE", "SamplerER_SDE", "SamplerEulerAncestral",
           "SamplerEulerAncestralCFGPP", "SamplerLMS", "SamplerSASolver", "SamplerSEEDS2"]

SAMPLERS = "sampling/custom_sampling/samplers"
OUT = [Output("SAMPLER", SAMPLER)]


def _f(name: str, default: float, max: float = 100.0, min: float = 0.0, step: float = 0.01, **kw) -> Input:
    return Float(name, default, min=min, max=max, step=step, **kw)


def _noise_device() -> Input:
    return Choice("noise_device", ["gpu", "cpu"])


@node(category=SAMPLERS)
class KSamplerSelect:
    """A sampler by name, as KSampler runs it."""
    inputs = [Choice("sampler_name", SAMPLER_NAMES)]
    outputs = OUT

    def run(self, ctx, sampler_name):
        return (sampler_object(sampler_name),)


@node(category=SAMPLERS)
class SamplerDPMPP_3M_SDE:
    inputs = [_f("eta", 1.0), _f("s_noise", 1.0), _noise_device()]
    outputs = OUT

    def run(self, ctx, eta, s_noise, noise_device):
        name = "dpmpp_3m_sde" if noise_device == "cpu" else "dpmpp_3m_sde_gpu"
        return (SamplerChoice(name, {"eta": eta, "s_noise": s_noise}),)


@node(category=SAMPLERS)
class SamplerDPMPP_2M_SDE:
    inputs = [Choice("solver_type", ["midpoint", "heun"]), _f("eta", 1.0), _f("s_noise", 1.0), _noise_device()]
    outputs = OUT

    def run(self, ctx, solver_type, eta, s_noise, noise_device):
        name = "dpmpp_2m_sde" if noise_device == "cpu" else "dpmpp_2m_sde_gpu"
        return (SamplerChoice(name, {"eta": eta, "s_noise": s_noise, "solver_type": solver_type}),)


@node(category=SAMPLERS)
class SamplerDPMPP_SDE:
    inputs = [_f("eta", 1.0), _f("s_noise", 1.0), _f("r", 0.5), _noise_device()]
    outputs = OUT

    def run(self, ctx, eta, s_noise, r, noise_device):
        name = "dpmpp_sde" if noise_device == "cpu" else "dpmpp_sde_gpu"
        return (SamplerChoice(name, {"eta": eta, "s_noise": s_noise, "r": r}),)


@node(category=SAMPLERS)
class SamplerDPMPP_2S_Ancestral:
    inputs = [_f("eta", 1.0), _f("s_noise", 1.0)]
    outputs = OUT

    def run(self, ctx, eta, s_noise):
        return (SamplerChoice("dpmpp_2s_ancestral", {"eta": eta, "s_noise": s_noise}),)


@node(category=SAMPLERS)
class SamplerEulerAncestral:
    inputs = [_f("eta", 1.0), _f("s_noise", 1.0)]
    outputs = OUT

    def run(self, ctx, eta, s_noise):
        return (SamplerChoice("euler_ancestral", {"eta": eta, "s_noise": s_noise}),)


@node(category=SAMPLERS, display_name="SamplerEulerAncestralCFG++")
class SamplerEulerAncestralCFGPP:
    inputs = [_f("eta", 1.0, max=1.0), _f("s_noise", 1.0, max=10.0)]
    outputs = OUT

    def run(self, ctx, eta, s_noise):
        return (SamplerChoice("euler_ancestral_cfg_pp", {"eta": eta, "s_noise": s_noise}),)


@node(category=SAMPLERS)
class SamplerLMS:
    inputs = [Int("order", 4, min=1, max=100)]
    outputs = OUT

    def run(self, ctx, order):
        return (SamplerChoice("lms", {"order": order}),)


@node(category=SAMPLERS)
class SamplerDPMAdaptative:
    inputs = [Int("order", 3, min=2, max=3), _f("rtol", 0.05), _f("atol", 0.0078), _f("h_init", 0.05),
              _f("pcoeff", 0.0), _f("icoeff", 1.0), _f("dcoeff", 0.0), _f("accept_safety", 0.81), _f("eta", 0.0),
              _f("s_noise", 1.0)]
    outputs = OUT

    def run(self, ctx, order, rtol, atol, h_init, pcoeff, icoeff, dcoeff, accept_safety, eta, s_noise):
        return (SamplerChoice("dpm_adaptive", {"order": order, "rtol": rtol, "atol": atol, "h_init": h_init,
                                               "pcoeff": pcoeff, "icoeff": icoeff, "dcoeff": dcoeff,
                                               "accept_safety": accept_safety, "eta": eta, "s_noise": s_noise}),)


def _reverse_time_sde_scaler(eta: float):
    def scale(x):
        return x ** (eta + 1)
    return scale


@node(category=SAMPLERS)
class SamplerER_SDE:
    """ER-SDE, or the reverse-time SDE (stochastic strength eta) or the ODE that the same solver integrates."""
    inputs = [Choice("solver_type", ["ER-SDE", "Reverse-time SDE", "ODE"]), Int("max_stage", 3, min=1, max=3),
              _f("eta", 1.0, tooltip="Stochastic strength of reverse-time SDE.\nWhen eta=0, it reduces to "
                 "deterministic ODE. This setting doesn't apply to ER-SDE solver type."),
              _f("s_noise", 1.0)]
    outputs = OUT

    def run(self, ctx, solver_type, max_stage, eta, s_noise):
        if solver_type == "ODE" or (solver_type == "Reverse-time SDE" and eta == 0):
            eta, s_noise = 0, 0
        scaler = None if solver_type == "ER-SDE" else _reverse_time_sde_scaler(eta)  # None: ER-SDE's own
        return (SamplerChoice("er_sde", {"s_noise": s_noise, "noise_scaler": scaler, "max_stage": max_stage}),)


@node(category=SAMPLERS)
class SamplerSASolver:
    """SA-Solver with its SDE window given as percents of the run, orders and PECE mode."""
    inputs = [Input("model", MODEL), _f("eta", 1.0, max=10.0), _f("sde_start_percent", 0.2, max=1.0, step=0.001),
              _f("sde_end_percent", 0.8, max=1.0, step=0.001), _f("s_noise", 1.0),
              Int("predictor_order", 3, min=1, max=6), Int("corrector_order", 4, min=0, max=6),
              Boolean("use_pece", False), Boolean("simple_order_2", False)]
    outputs = OUT

    def run(self, ctx, model, eta, sde_start_percent, sde_end_percent, s_noise, predictor_order, corrector_order,
            use_pece, simple_order_2):
        ms = model_sampling(model)
        tau = tau_interval(ms.percent_to_sigma(sde_start_percent), ms.percent_to_sigma(sde_end_percent), eta=eta)
        return (SamplerChoice("sa_solver", {"tau_func": tau, "s_noise": s_noise, "predictor_order": predictor_order,
                                            "corrector_order": corrector_order, "use_pece": use_pece,
                                            "simple_order_2": simple_order_2}),)


@node(category=SAMPLERS)
class SamplerSEEDS2:
    """SEEDS-2; also exp_heun_2_x0 (solver_type phi_2, r 1, eta 0) and exp_heun_2_x0_sde (phi_2, r 1, eta 1)."""
    inputs = [Choice("solver_type", ["phi_1", "phi_2"]), _f("eta", 1.0, tooltip="Stochastic strength"),
              _f("s_noise", 1.0, tooltip="SDE noise multiplier"),
              _f("r", 0.5, min=0.01, max=1.0, tooltip="Relative step size for the intermediate stage (c2 node)")]
    outputs = OUT

    def run(self, ctx, solver_type, eta, s_noise, r):
        return (SamplerChoice("seeds_2", {"eta": eta, "s_noise": s_noise, "r": r, "solver_type": solver_type}),)
