"""unCLIP's image conditioning (ComfyUI's model_base.unclip_adm and CLIPEmbeddingNoiseAugmentation):
each CLIP vision image embedding is noise-augmented to a level, the level's sinusoidal embedding is
appended, and the result (times the strength) is the U-Net's class-embedding input `y`."""
from __future__ import annotations

import math

import torch


def squaredcos_cap_v2_betas(steps: int = 1000, max_beta: float = 0.999) -> torch.Tensor:
    """The karlo prior's schedule: alpha_bar(t) = cos((t + 0.008) / 1.008 * pi / 2)^2, float64."""
    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    return torch.tensor([min(1 - alpha_bar((i + 1) / steps) / alpha_bar(i / steps), max_beta) for i in range(steps)],
                        dtype=torch.float64)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[N] -> [N, dim]: cos then sin of t * 10000^(-i/half) (the LDM U-Net's embedding)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1) if dim % 2 else emb


class NoiseAugmentor:
    """CLIPEmbeddingNoiseAugmentation with ComfyUI's settings: squaredcos_cap_v2 over 1000 steps, data
    mean 0 and std 1 (no CLIP statistics file), max noise level 1000. Tables are float32 as in ComfyUI."""

    def __init__(self, timestep_dim: int, steps: int = 1000) -> None:
        self.timestep_dim = timestep_dim
        self.max_noise_level = steps
        alphas_cumprod = torch.cumprod(1.0 - squaredcos_cap_v2_betas(steps), dim=0)
        self.sqrt_alphas_cumprod = alphas_cumprod.sqrt().float()
        self.sqrt_one_minus_alphas_cumprod = (1.0 - alphas_cumprod).sqrt().float()

    def __call__(self, x: torch.Tensor, noise_level: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """x [D] or [1, D] -> (augmented [1, D], level embedding [1, timestep_dim])."""
        x = x.reshape(1, -1).float()
        noise = torch.randn(x.shape, dtype=x.dtype, generator=generator).to(x.device)
        z = self.sqrt_alphas_cumprod[noise_level].to(x.device) * x + \
            self.sqrt_one_minus_alphas_cumprod[noise_level].to(x.device) * noise
        return z, timestep_embedding(torch.tensor([noise_level], device=x.device), self.timestep_dim)

    def level(self, augmentation: float) -> int:
        return round((self.max_noise_level - 1) * augmentation)


def seeded_generator(seed: int) -> torch.Generator:
    """torch.manual_seed(seed)'s stream (negative seeds wrap as torch does)."""
    return torch.Generator(device="cpu").manual_seed(int(seed) % 2 ** 64)


def unclip_adm(unclip_conditioning: list[dict], augmentor: NoiseAugmentor, device: torch.device,
               seed: int | None, merge_augmentation: float = 0.05) -> torch.Tensor:
    """The U-Net's `y` [1, 2 * D] for unCLIPConditioning entries, as model_base.unclip_adm with the
    sampler's seed - 10. Several embeddings (entries or images in a batch) are summed and augmented
    again at merge_augmentation; that noise continues the last seeded stream (what ComfyUI's global CPU
    generator gives; on CUDA ComfyUI draws it unseeded, here it stays reproducible)."""
    generator = None
    outs = []
    for item in unclip_conditioning:
        strength, augmentation = float(item["strength"]), float(item["noise_augmentation"])
        for embed in item["clip_vision_output"].image_embeds:
            # ComfyUI re-seeds for every embedding: each draws the same noise
            generator = seeded_generator((seed or 0) - 10)
            z, level_emb = augmentor(embed.to(device), augmentor.level(augmentation), generator)
            outs.append(torch.cat((z, level_emb), dim=1) * strength)
    if len(outs) == 1:
        return outs[0]
    summed = torch.stack(outs).sum(0)
    z, level_emb = augmentor(summed[:, :augmentor.timestep_dim], augmentor.level(merge_augmentation), generator)
    return torch.cat((z, level_emb), dim=1)
