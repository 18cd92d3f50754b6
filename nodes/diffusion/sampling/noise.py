"""Noise: the initial latent noise from a seed, and the noise samplers of ancestral / SDE samplers.

All three follow ComfyUI so a seed gives ComfyUI's image:
- prepare_noise: the global CPU generator seeded with the seed (torch.manual_seed), one
  torch.randn of the latent shape; with "batch_index", one draw per index up to the largest.
- default_noise_sampler: a torch.Generator on the latent's device seeded with the seed (+1 on
  the CPU, so it does not repeat the initial noise); one randn per call.
- BrownianTreeNoiseSampler: increments of one Brownian motion over [sigma_min, sigma_max]
  (torchsde's BrownianTree, entropy = seed), so an SDE sampler's noise does not depend on
  the number of steps (the same seed at 20 or 40 steps gives similar images).
"""
from __future__ import annotations

import warnings
from typing import Callable, Sequence

import torch

NoiseSampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (sigma, sigma_next) -> unit normal noise

_SEED_MASK = 2 ** 64 - 1


def prepare_noise(latent: torch.Tensor, seed: int, batch_index: Sequence[int] | None = None) -> torch.Tensor:
    """ComfyUI's comfy.sample.prepare_noise: CPU noise, drawn in float32, of the latent's shape.
    (ComfyUI seeds the global generator; a private one seeded alike draws the same numbers.)"""
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    shape = list(latent.shape)
    if batch_index is None:
        return torch.randn(shape, dtype=torch.float32, generator=generator, device="cpu").to(latent.dtype)
    indices = [int(i) for i in batch_index]
    draws: dict[int, torch.Tensor] = {}
    wanted = set(indices)
    for i in range(max(indices) + 1):  # the draws before an index are made (and dropped) too
        noise = torch.randn([1] + shape[1:], dtype=torch.float32, generator=generator, device="cpu")
        if i in wanted:
            draws[i] = noise
    return torch.cat([draws[i] for i in indices], dim=0).to(latent.dtype)


class RandomNoise:
    """The NOISE of RandomNoise / SamplerCustom: the initial noise of a seed (prepare_noise)."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def generate_noise(self, latent: dict) -> torch.Tensor:
        return prepare_noise(latent["samples"], self.seed, latent.get("batch_index"))


class EmptyNoise:
    """The NOISE of DisableNoise: zeros (the latent is sampled as it is); its seed, 0, still seeds the sampler."""

    seed = 0

    def generate_noise(self, latent: dict) -> torch.Tensor:
        samples = latent["samples"]
        return torch.zeros(samples.shape, dtype=samples.dtype, device="cpu")


def default_noise_sampler(x: torch.Tensor, seed: int | None = None) -> NoiseSampler:
    """Fresh standard normal noise of x's shape from a seeded generator on x's device."""
    generator = None
    if seed is not None:
        if x.device.type == "cpu":
            seed = (int(seed) + 1) & _SEED_MASK
        generator = torch.Generator(device=x.device)
        generator.manual_seed(int(seed))

    def sample(sigma, sigma_next) -> torch.Tensor:
        return torch.randn(x.shape, dtype=x.dtype, layout=x.layout, device=x.device, generator=generator)

    return sample


class BrownianTreeNoiseSampler:
    """Normalised increments (W(s1) - W(s0)) / sqrt(|s1 - s0|) of a Brownian motion indexed by sigma.

    cpu=True keeps the tree on the CPU (ComfyUI's dpmpp_sde / dpmpp_2m_sde / dpmpp_3m_sde), so the
    noise is the same on every device; the *_gpu samplers build it on x's device.
    """

    def __init__(self, x: torch.Tensor, sigma_min: torch.Tensor | float, sigma_max: torch.Tensor | float,
                 seed: int | None = None, cpu: bool = True) -> None:
        try:
            import torchsde
        except ImportError as exc:  # pragma: no cover - torchsde is a dependency of the diffusion pack
            raise RuntimeError("the SDE samplers need the 'torchsde' package (pip install torchsde)") from exc
        self.cpu = cpu
        t0, t1 = torch.as_tensor(sigma_min), torch.as_tensor(sigma_max)
        self.sign = 1
        if t0 > t1:
            t0, t1, self.sign = t1, t0, -1
        w0 = torch.zeros_like(x)
        if seed is None:
            seed = int(torch.randint(0, 2 ** 63 - 1, ()).item())
        if cpu:
            t0, t1, w0 = t0.detach().cpu(), t1.detach().cpu(), w0.detach().cpu()
        self.tree = torchsde.BrownianTree(t0, w0, t1, entropy=int(seed))

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        t0, t1 = torch.as_tensor(sigma), torch.as_tensor(sigma_next)
        sign = 1
        if t0 > t1:
            t0, t1, sign = t1, t0, -1
        device, dtype = t0.device, t0.dtype
        if self.cpu:
            t0, t1 = t0.detach().cpu().float(), t1.detach().cpu().float()
        with warnings.catch_warnings():  # float32 rounding of the end points trips torchsde's range check
            warnings.filterwarnings("ignore", message="Should have t", category=UserWarning)
            w = self.tree(t0, t1)
        w = w.to(device=device, dtype=dtype) * (self.sign * sign)
        return w / (t1 - t0).abs().sqrt().to(device)
