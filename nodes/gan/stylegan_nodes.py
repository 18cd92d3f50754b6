"""StyleGAN2 nodes: load a generator, map seeds to W / W+ (with truncation), mix styles, synthesise.

W+ latents travel as LATENT {"samples": [B, num_ws, w_dim], "stylegan": "W+"}, so the latent tools
(GANLatentInterpolate with lerp, LatentArithmetic) work in W space unchanged and keep the tag.
"""
from __future__ import annotations

import torch

from nodegraph import IMAGE, LATENT, Choice, Float, Input, Int, ModelHandle, Output, Seed, SocketType, WeightsFile, node

from .latents import seeded_normal
from .stylegan import NOISE_MODES, mix, truncate
from .stylegan_layouts import WRAPPERS, StyleGANLayoutError, load_stylegan, pickle_message

STYLEGAN = SocketType("STYLEGAN", "#ffb74d")  # a StyleGAN2 generator's ModelHandle (info: config, layout)
FOLDER = "gan"
W_TAG = "W+"
CHUNK = 32


def stylegan_choices(env) -> list[str]:
    """The gan folder's weight files, and any .pkl there (so choosing one explains how to convert it)."""
    pickles = sorted({p.name for folder in env.folders.search_paths(FOLDER) if folder.is_dir()
                      for p in folder.glob("*.pkl")})
    return env.folders.list(FOLDER) + pickles


def build_stylegan(weights: WeightsFile) -> ModelHandle:
    generator, info = load_stylegan(weights.tensors, weights.name)
    # float32 everywhere: demodulation sums squares of many weights (fp16 overflows in the large layers)
    return ModelHandle(generator, name=weights.name, dtype=torch.float32, info={**info, "meta": weights.metadata})


@node(category="loaders/gan")
class StyleGANLoader:
    """Load a StyleGAN2 / StyleGAN2-ADA generator from weights: NVIDIA's official PyTorch layout (a G_ema
    state dict saved as .safetensors) or rosinality's stylegan2-pytorch g_ema (.pt or .safetensors).
    Resolution, z/w sizes, mapping depth and channel widths are read from the keys. Pickled .pkl
    snapshots are never opened: the error gives the command that converts one."""
    inputs = [Choice("stylegan_name", stylegan_choices)]
    outputs = [Output("STYLEGAN", STYLEGAN)]

    @classmethod
    def fingerprint(cls, env, stylegan_name):
        return None if stylegan_name.lower().endswith(".pkl") else env.models.fingerprint(FOLDER, stylegan_name)

    def run(self, ctx, stylegan_name):
        if stylegan_name.lower().endswith(".pkl"):
            raise ValueError(f"StyleGANLoader input 'stylegan_name': {pickle_message(stylegan_name)}")
        try:
            return ctx.models.load(FOLDER, stylegan_name, build_stylegan, wrappers=WRAPPERS)
        except StyleGANLayoutError as exc:
            raise ValueError(f"StyleGANLoader input 'stylegan_name': {exc}") from None


def seeded_z(seed: int, count: int, z_dim: int) -> torch.Tensor:
    """z for image k from seed + k, so an image does not depend on the batch it was drawn in."""
    return torch.cat([seeded_normal(seed + k, (1, z_dim)) for k in range(count)])


def _ws(latent: dict, stylegan: ModelHandle, name: str) -> torch.Tensor:
    ws = latent["samples"]
    config = stylegan.info["config"]
    if ws.ndim == 2:  # a plain W: broadcast to every synthesis input
        ws = ws[:, None].expand(-1, config.num_ws, -1)
    if ws.ndim != 3 or tuple(ws.shape[1:]) != (config.num_ws, config.w_dim):
        raise ValueError(f"{name} has shape {list(latent['samples'].shape)}; {stylegan.name} takes W+ "
                         f"[batch, {config.num_ws}, {config.w_dim}] (make it with StyleGANMapping)")
    return ws.float()


@node(category="gan/stylegan")
class StyleGANMapping:
    """Seeds -> W+ through the mapping network (z of image k drawn from seed + k). Truncation pulls the
    first `truncation_cutoff` ws (0: all) towards the average w: w_avg + psi (w - w_avg); psi 0 gives
    the average image for every seed, psi 1 leaves w as mapped."""
    inputs = [Input("stylegan", STYLEGAN), Seed("seed", 0), Int("batch_size", 1, min=1, max=4096),
              Float("truncation_psi", 1.0, min=-2.0, max=2.0, step=0.05),
              Int("truncation_cutoff", 0, min=0, max=64, tooltip="truncate only the first N ws (0: all)")]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, stylegan, seed, batch_size, truncation_psi, truncation_cutoff):
        config = stylegan.info["config"]
        z = seeded_z(seed, batch_size, config.z_dim)
        with ctx.devices.use(stylegan) as module, torch.inference_mode():
            w = module.mapping(z.to(module.mapping.w_avg.device)).float().cpu()
            w_avg = module.mapping.w_avg.float().cpu()
        ws = truncate(w[:, None].repeat(1, config.num_ws, 1), w_avg, truncation_psi, truncation_cutoff or None)
        return ({"samples": ws, "stylegan": W_TAG},)


@node(category="gan/stylegan")
class StyleGANTruncation:
    """Truncate any W+ (mixed, interpolated, edited) towards the generator's average w."""
    inputs = [Input("stylegan", STYLEGAN), Input("latent", LATENT),
              Float("truncation_psi", 0.7, min=-2.0, max=2.0, step=0.05), Int("truncation_cutoff", 0, min=0, max=64)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, stylegan, latent, truncation_psi, truncation_cutoff):
        ws = _ws(latent, stylegan, "latent")
        w_avg = stylegan.module.mapping.w_avg.float().cpu()
        return ({"samples": truncate(ws, w_avg, truncation_psi, truncation_cutoff or None), "stylegan": W_TAG},)


@node(category="gan/stylegan")
class StyleGANStyleMix:
    """Style mixing: the first `crossover` ws (coarse layers: pose, shape, layout) from `coarse`, the
    rest (fine layers: colour, texture) from `fine`. Batches pair up item by item (1 broadcasts)."""
    inputs = [Input("stylegan", STYLEGAN), Input("coarse", LATENT), Input("fine", LATENT),
              Int("crossover", 4, min=0, max=64, tooltip="ws taken from `coarse`: 2 per resolution from 4x4 up")]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, stylegan, coarse, fine, crossover):
        a, b = _ws(coarse, stylegan, "coarse"), _ws(fine, stylegan, "fine")
        if a.shape[0] != b.shape[0] and 1 not in (a.shape[0], b.shape[0]):
            raise ValueError(f"StyleGANStyleMix: batch sizes {a.shape[0]} and {b.shape[0]} do not pair up (1 broadcasts)")
        if crossover > a.shape[1]:
            raise ValueError(f"StyleGANStyleMix input 'crossover': {crossover} is more than the {a.shape[1]} ws "
                             f"of {stylegan.name}")
        return ({"samples": mix(a, b, crossover), "stylegan": W_TAG},)


def synthesise(ctx, stylegan: ModelHandle, ws: torch.Tensor, noise_mode: str, noise_seed: int) -> torch.Tensor:
    """W+ -> IMAGE [B, H, W, 3] in 0..1; random noise is drawn on the CPU from noise_seed (same on any device)."""
    generator = torch.Generator("cpu").manual_seed(int(noise_seed))
    outs = []
    with ctx.devices.use(stylegan) as module:
        device = module.mapping.w_avg.device
        for start in range(0, ws.shape[0], CHUNK):
            with torch.inference_mode():
                y = module(ws[start:start + CHUNK].to(device), noise_mode=noise_mode, generator=generator)
            outs.append(((y.float().cpu() + 1) / 2).clamp(0, 1))
            ctx.progress(min(start + CHUNK, ws.shape[0]), ws.shape[0])
    return torch.cat(outs).movedim(1, -1).contiguous()


@node(category="gan/stylegan")
class StyleGANSynthesis:
    """W+ -> images through the synthesis network. noise_mode: const (the per-layer noise images stored
    in the file, as NVIDIA's generate.py does by default), random (drawn from noise_seed), none."""
    inputs = [Input("stylegan", STYLEGAN), Input("latent", LATENT), Choice("noise_mode", list(NOISE_MODES)),
              Seed("noise_seed", 0)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, stylegan, latent, noise_mode, noise_seed):
        return synthesise(ctx, stylegan, _ws(latent, stylegan, "latent"), noise_mode, noise_seed)


@node(category="gan/stylegan")
class StyleGANSample:
    """Seeds -> images in one node (StyleGANMapping then StyleGANSynthesis): image k from seed + k,
    truncation psi on the first `truncation_cutoff` ws (0: all), noise as in StyleGANSynthesis
    (random noise drawn from the seed)."""
    inputs = [Input("stylegan", STYLEGAN), Seed("seed", 0), Int("batch_size", 1, min=1, max=4096),
              Float("truncation_psi", 1.0, min=-2.0, max=2.0, step=0.05), Int("truncation_cutoff", 0, min=0, max=64),
              Choice("noise_mode", list(NOISE_MODES))]
    outputs = [Output("IMAGE", IMAGE), Output("LATENT", LATENT)]

    def run(self, ctx, stylegan, seed, batch_size, truncation_psi, truncation_cutoff, noise_mode):
        (latent,) = StyleGANMapping().run(ctx, stylegan, seed, batch_size, truncation_psi, truncation_cutoff)
        return synthesise(ctx, stylegan, latent["samples"], noise_mode, seed), latent
