"""ComfyUI's comfy.k_diffusion.sampling: the sample_* functions with k-diffusion's signature
(model, x, sigmas, extra_args=None, callback=None, disable=None, **options), so a pack's own sampler can
call e.g. sample_euler inside it; plus to_d, get_ancestral_step, default_noise_sampler and
BrownianTreeNoiseSampler. They are the diffusion pack's samplers (model_surface.py)."""
from __future__ import annotations

from ...model_surface import service
from ...surface import unsupported

_HELPERS = ("to_d", "get_ancestral_step", "default_noise_sampler", "BrownianTreeNoiseSampler")
_missing = unsupported(__name__)


def __getattr__(name: str):
    if name.startswith("sample_"):
        sampling = service().sampling
        if name in sampling.kdiffusion_names():
            return sampling.kdiffusion_function(name[len("sample_"):])
    elif name in _HELPERS:
        return getattr(service().sampling, name)
    return _missing(name)


def __dir__() -> list[str]:
    try:
        names = service().sampling.kdiffusion_names()
    except AttributeError:  # no diffusion pack: nothing to list
        names = []
    return sorted([*globals(), *names, *_HELPERS])
