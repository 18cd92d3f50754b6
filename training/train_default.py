"""Train the embedded default text-to-image model on the default world (see training/README.md).

Three stages, all deterministic from --seed (up to GPU kernel non-determinism):
  1. a KL autoencoder (diffusers AutoencoderKL, 128x128 RGB -> 4x16x16 latents, downscale 8),
  2. the latent scale factor = 1 / std of its latents,
  3. a U-Net with cross-attention (diffusers UNet2DConditionModel) jointly with a small CLIP text
     encoder (transformers CLIPTextModel, real CLIP BPE ids: vocab 49408, 77 positions), with the
     standard SD objective (eps prediction, scaled_linear betas 0.00085..0.012, 1000 steps) and 10%
     caption dropout so classifier-free guidance works.
Writes diffusers-layout weights (fp16, EMA) with their configs in the safetensors metadata, sample
grids and metrics to --out; training/export_default.py turns them into the shipped single file.

GPU:  python training/train_default.py --out OUT
CPU smoke test (seconds): python training/train_default.py --smoke --out /tmp/smoke
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from training.default_world import (  # noqa: E402
    COLOR_NAMES,
    POSITION_NAMES,
    SHAPES,
    make_caption,
    read_image,
    render,
    sample_scenes,
    token_ids,
)

IMAGE_SIZE = 128
LATENT_DOWNSCALE = 8

VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4,
    block_out_channels=[32, 64, 96, 96],
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=32,
    act_fn="silu",
    sample_size=IMAGE_SIZE,
)
UNET_CONFIG = dict(
    sample_size=IMAGE_SIZE // LATENT_DOWNSCALE,
    in_channels=4,
    out_channels=4,
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    block_out_channels=[64, 128, 128],
    layers_per_block=1,
    cross_attention_dim=64,
    attention_head_dim=8,  # SD1 meaning: 8 heads
    transformer_layers_per_block=1,
    use_linear_projection=False,
    norm_num_groups=32,
    flip_sin_to_cos=True,
    freq_shift=0,
    act_fn="silu",
)
TEXT_CONFIG = dict(
    vocab_size=49408,
    hidden_size=64,
    intermediate_size=256,
    num_hidden_layers=4,
    num_attention_heads=1,  # head width 64, as in CLIP
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
    projection_dim=64,
    bos_token_id=49406,
    eos_token_id=49407,
    pad_token_id=49407,
)
BETA_START, BETA_END, TRAIN_TIMESTEPS = 0.00085, 0.012, 1000


def build_models():
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    vae = AutoencoderKL(**VAE_CONFIG)
    unet = UNet2DConditionModel(**UNET_CONFIG)
    text_encoder = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))
    return vae, unet, text_encoder


def alphas_cumprod() -> torch.Tensor:
    betas = torch.linspace(BETA_START**0.5, BETA_END**0.5, TRAIN_TIMESTEPS, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, 0).float()


def world_images(seed: int, count: int, device) -> tuple[torch.Tensor, list[str]]:
    scenes = sample_scenes(seed, count)
    images, _ = render(scenes, size=IMAGE_SIZE, device=device)
    return images * 2 - 1, scenes.captions  # the VAE works in -1..1 as SD's does


def eps_step(opt, params, predict, latents: torch.Tensor, noise: torch.Tensor, t: torch.Tensor,
             acp: torch.Tensor, snr: torch.Tensor, clip: float = 1.0):
    """One optimisation step of SD's eps objective with min-SNR-5 weights (same objective, faster
    convergence): noise `latents` at timesteps t, predict the noise with `predict(noisy, t)` (bf16
    autocast on CUDA), clip the gradient norm, step. Used by every diffusion trainer here.
    Returns (loss, per-sample mse, gradient norm) as tensors."""
    a = acp[t].view(-1, 1, 1, 1)
    noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
    with torch.autocast(latents.device.type, dtype=torch.bfloat16, enabled=latents.device.type == "cuda"):
        pred = predict(noisy, t).float()
    weight = torch.clamp(snr[t], max=5.0) / snr[t]
    per_sample = ((pred - noise) ** 2).mean(dim=(1, 2, 3))
    loss = (weight * per_sample).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(params, clip)
    opt.step()
    return loss, per_sample, grad_norm


def cosine_lr(step: int, total: int, warmup: int, floor: float = 0.1) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def log(msg: str, logfile) -> None:
    print(msg, flush=True)
    logfile.write(msg + "\n")
    logfile.flush()


# ----------------------------------------------------------------------------------------- VAE


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def train_vae(vae, args, device, logfile) -> dict:
    vae.train()
    # start with a small posterior std (logvar -6): with SD's default init the sampled latents are
    # mostly noise and the decoder learns nothing for hundreds of steps
    with torch.no_grad():
        vae.encoder.conv_out.bias[VAE_CONFIG["latent_channels"]:] = -6.0
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, betas=(0.9, 0.99), weight_decay=0.0)
    t0 = time.time()
    stats = {}
    for step in range(args.vae_steps):
        for group in opt.param_groups:
            group["lr"] = args.vae_lr * cosine_lr(step, args.vae_steps, warmup=min(100, args.vae_steps))
        x, _ = world_images(args.seed * 1_000_003 + step, args.vae_batch, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            posterior = vae.encode(x).latent_dist
            z = posterior.sample()
            recon = vae.decode(z).sample.float()
        l1 = (recon - x).abs().mean()
        l2 = ((recon - x) ** 2).mean()
        gx, gy = image_gradients(recon)
        tx, ty = image_gradients(x)
        edge = (gx - tx).abs().mean() + (gy - ty).abs().mean()
        kl = posterior.kl().mean() / z[0].numel()  # per latent element
        loss = l1 + l2 + 0.5 * edge + args.vae_kl * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if step % max(1, args.vae_steps // 20) == 0 or step == args.vae_steps - 1:
            stats = dict(step=step, l1=l1.item(), l2=l2.item(), edge=edge.item(), kl=kl.item())
            log(f"vae {step:6d} l1 {l1.item():.4f} l2 {l2.item():.5f} edge {edge.item():.4f} kl {kl.item():.2f} "
                f"({time.time() - t0:.0f}s)", logfile)
    stats["seconds"] = time.time() - t0
    vae.eval()
    return stats


@torch.no_grad()
def latent_statistics(vae, args, device) -> dict:
    x, _ = world_images(args.seed + 7, args.scale_images, device)
    zs, recons = [], []
    for chunk in x.split(256):
        posterior = vae.encode(chunk).latent_dist
        zs.append(posterior.sample())
        recons.append(vae.decode(posterior.mode()).sample)
    z = torch.cat(zs)
    recon = torch.cat(recons)
    return dict(
        std=z.std().item(),
        mean=z.mean().item(),
        channel_mean=z.mean(dim=(0, 2, 3)).tolist(),
        channel_std=z.std(dim=(0, 2, 3)).tolist(),
        recon_l1=(recon - x).abs().mean().item(),
        recon_psnr=(10 * torch.log10(4 / ((recon - x) ** 2).mean())).item(),
    )


# ------------------------------------------------------------------------------------ U-Net + TE


@torch.no_grad()
def build_latent_pool(vae, args, device, logfile):
    """Encode a fixed pool of world images once (posterior mean and std, re-sampled every step)."""
    t0 = time.time()
    means, stds, tokens = [], [], []
    chunk = 256 if device.type == "cuda" else 8
    for c in range(math.ceil(args.pool / chunk)):
        x, captions = world_images(args.seed * 7919 + 1_000_000 + c, chunk, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            posterior = vae.encode(x).latent_dist
        means.append(posterior.mean.float())
        stds.append(posterior.std.float())
        tokens.append(torch.tensor([token_ids(c_) for c_ in captions], dtype=torch.long))
    pool = torch.cat(means)[: args.pool], torch.cat(stds)[: args.pool], torch.cat(tokens)[: args.pool].to(device)
    log(f"latent pool: {pool[0].shape[0]} images encoded in {time.time() - t0:.1f}s", logfile)
    return pool


def prepare_tokens(tokens: torch.Tensor, generator: torch.Generator, dropout: float) -> torch.Tensor:
    """Caption dropout (-> the empty prompt) and padding with EOS or with 0 (either tokenizer convention)."""
    b = tokens.shape[0]
    device = tokens.device
    empty = torch.tensor(token_ids(""), device=device)
    drop = torch.rand(b, generator=generator, device=device) < dropout
    tokens = torch.where(drop[:, None], empty[None], tokens)
    after_eos = (tokens == 49407).long().cumsum(1) > 1  # positions after the first EOS
    pad_zero = torch.rand(b, generator=generator, device=device) < 0.5
    return torch.where(after_eos & pad_zero[:, None], torch.zeros_like(tokens), tokens)


def train_unet(unet, text_encoder, pool, scale: float, args, device, logfile):
    unet.train()
    text_encoder.train()
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99), weight_decay=0.01)
    ema_params = [p.detach().clone().float() for p in params]
    acp = alphas_cumprod().to(device)
    snr = acp / (1 - acp)
    generator = torch.Generator(device=device).manual_seed(args.seed + 1)
    means, stds, tokens = pool
    t0 = time.time()
    stats = {}
    for step in range(args.unet_steps):
        if args.unet_deadline and time.time() - args.t_start > args.unet_deadline:
            log(f"unet: stopping at step {step}: {args.unet_deadline}s deadline of the whole run reached", logfile)
            break
        for group in opt.param_groups:
            group["lr"] = args.lr * cosine_lr(step, args.unet_steps, warmup=min(250, args.unet_steps))
        idx = torch.randint(0, means.shape[0], (args.batch,), generator=generator, device=device)
        eps_z = torch.randn(means[idx].shape, generator=generator, device=device)
        latents = (means[idx] + stds[idx] * eps_z) * scale
        ids = prepare_tokens(tokens[idx], generator, args.caption_dropout)
        noise = torch.randn(latents.shape, generator=generator, device=device)
        if args.offset_noise:
            noise = noise + args.offset_noise * torch.randn(
                latents.shape[0], latents.shape[1], 1, 1, generator=generator, device=device)
        t = torch.randint(0, TRAIN_TIMESTEPS, (args.batch,), generator=generator, device=device)
        loss, per_sample, grad_norm = eps_step(
            opt, params, lambda noisy, t: unet(noisy, t, text_encoder(ids).last_hidden_state).sample,
            latents, noise, t, acp, snr)
        decay = min(args.ema, (1 + step) / (10 + step))
        torch._foreach_lerp_(ema_params, [p.detach().float() for p in params], 1 - decay)
        if step % max(1, args.unet_steps // 40) == 0 or step == args.unet_steps - 1:
            stats = dict(step=step, loss=loss.item(), mse=per_sample.mean().item(), grad_norm=grad_norm.item())
            log(f"unet {step:6d} loss {loss.item():.4f} mse {per_sample.mean().item():.4f} "
                f"gn {grad_norm.item():.2f} ({time.time() - t0:.0f}s)", logfile)
    stats["seconds"] = time.time() - t0
    with torch.no_grad():
        for p, e in zip(params, ema_params):
            p.copy_(e)
    unet.eval()
    text_encoder.eval()
    return stats


# ---------------------------------------------------------------------------------- sampling


@torch.no_grad()
def encode_prompts(text_encoder, prompts: list[str], device) -> torch.Tensor:
    ids = torch.tensor([token_ids(p) for p in prompts], device=device)
    return text_encoder(ids).last_hidden_state


@torch.no_grad()
def ddim_sample(unet, text_encoder, vae, prompts, scale, steps=20, cfg=5.0, seed=0, device="cpu", residuals=None):
    """Deterministic DDIM (eta 0), trailing timesteps from 999, classifier-free guidance.
    residuals(x, t, context) -> extra U-Net keyword arguments for both sides (a ControlNet's residuals)."""
    device = torch.device(device)
    acp = alphas_cumprod().to(device)
    cond = encode_prompts(text_encoder, prompts, device)
    uncond = encode_prompts(text_encoder, [""] * len(prompts), device)
    context = torch.cat([uncond, cond])
    g = torch.Generator(device="cpu").manual_seed(seed)
    side = IMAGE_SIZE // LATENT_DOWNSCALE
    x = torch.randn(len(prompts), 4, side, side, generator=g).to(device)
    ts = torch.linspace(TRAIN_TIMESTEPS - 1, 0, steps + 1).round().long()[:-1].tolist()
    for i, t in enumerate(ts):
        xx, tt = torch.cat([x, x]), torch.full((2 * len(prompts),), t, device=device)
        extra = residuals(xx, tt, context) if residuals is not None else {}
        eps_u, eps_c = unet(xx, tt, context, **extra).sample.float().chunk(2)
        eps = eps_u + cfg * (eps_c - eps_u)
        a = acp[t]
        a_prev = acp[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0, device=device)
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    images = vae.decode(x / scale).sample.float()
    return ((images + 1) / 2).clamp(0, 1)


def save_grid(images: torch.Tensor, path: Path, columns: int) -> None:
    from PIL import Image

    b, c, h, w = images.shape
    rows = math.ceil(b / columns)
    grid = torch.ones(rows * columns, c, h, w)
    grid[:b] = images.cpu()
    grid = grid.view(rows, columns, c, h, w).permute(0, 3, 1, 4, 2).reshape(rows * h, columns * w, c)
    Image.fromarray((grid.numpy() * 255).round().astype(np.uint8)).save(path)


def evaluation_prompts(seed: int, count: int) -> list[tuple[str, str, str, str | None]]:
    """(prompt, shape colour, background colour, position or None), balanced over colours."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        color = COLOR_NAMES[i % len(COLOR_NAMES)]
        bg = COLOR_NAMES[(i % len(COLOR_NAMES) + rng.integers(1, len(COLOR_NAMES))) % len(COLOR_NAMES)]
        shape = SHAPES[rng.integers(len(SHAPES))]
        position = POSITION_NAMES[rng.integers(len(POSITION_NAMES))] if i % 2 else None
        out.append((make_caption(shape, color, bg, None, position), color, bg, position))
    return out


def evaluate(unet, text_encoder, vae, scale, args, device, out: Path, logfile) -> dict:
    prompts = evaluation_prompts(args.seed + 99, args.eval_prompts)
    images = ddim_sample(unet, text_encoder, vae, [p[0] for p in prompts], scale, steps=20, cfg=args.cfg,
                         seed=args.seed, device=device)
    shape_ok = bg_ok = pos_ok = pos_n = 0
    for img, (prompt, color, bg, position) in zip(images, prompts):
        r = read_image(img)
        shape_ok += r.shape_color == color
        bg_ok += r.background == bg
        if position:
            pos_n += 1
            pos_ok += r.position == position
    n = len(prompts)
    metrics = dict(shape_color_acc=shape_ok / n, background_acc=bg_ok / n, position_acc=pos_ok / max(1, pos_n), n=n)
    log(f"eval (DDIM 20 steps, cfg {args.cfg}): {json.dumps(metrics)}", logfile)
    save_grid(images[:64], out / "eval_samples.png", columns=8)
    (out / "eval_prompts.txt").write_text("\n".join(p[0] for p in prompts[:64]) + "\n")
    # a showcase grid: the same prompt skeleton across colours, shapes and positions
    showcase = [
        "a red circle on a blue background", "a green square on a white background", "a yellow star on a black background",
        "a blue triangle on a yellow background", "a purple heart on a pink background", "an orange diamond on a gray background",
        "a white circle on a red background", "a black square on a cyan background",
        "a red circle at the top left on a white background", "a red circle at the top right on a white background",
        "a red circle at the bottom left on a white background", "a red circle at the bottom right on a white background",
        "a small green star on a brown background", "a large green star on a brown background",
        "a cyan heart in the center on a purple background", "a brown triangle on the left on a green background",
    ]
    save_grid(ddim_sample(unet, text_encoder, vae, showcase, scale, steps=20, cfg=args.cfg, seed=args.seed + 1,
                          device=device), out / "showcase.png", columns=8)
    return metrics


# ------------------------------------------------------------------------------------ export


def export_diffusers(vae, unet, text_encoder, scale: float, metadata: dict, out: Path) -> None:
    """Two fp16 safetensors files (each under 16 MiB), configs and metrics in their metadata."""
    from safetensors.torch import save_file

    common = {"nodegraph.latent_scale": repr(scale), "nodegraph.info": json.dumps(metadata)}
    unet_sd = {f"unet.{k}": v.detach().half().cpu().contiguous() for k, v in unet.state_dict().items()}
    save_file(unet_sd, out / "default_unet.safetensors",
              metadata={**common, "nodegraph.unet_config": json.dumps(UNET_CONFIG)})
    rest = {f"vae.{k}": v.detach().half().cpu().contiguous() for k, v in vae.state_dict().items()}
    rest.update({f"text_encoder.{k}": v.detach().half().cpu().contiguous() for k, v in text_encoder.state_dict().items()})
    save_file(rest, out / "default_vae_text.safetensors",
              metadata={**common, "nodegraph.vae_config": json.dumps(VAE_CONFIG),
                        "nodegraph.text_encoder_config": json.dumps(TEXT_CONFIG)})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--vae-steps", type=int, default=3000)
    ap.add_argument("--vae-batch", type=int, default=64)
    ap.add_argument("--vae-lr", type=float, default=1e-3)
    ap.add_argument("--vae-kl", type=float, default=1e-5)
    ap.add_argument("--scale-images", type=int, default=2048)
    ap.add_argument("--pool", type=int, default=131072)
    ap.add_argument("--unet-steps", type=int, default=2800)
    ap.add_argument("--unet-deadline", type=float, default=0,
                    help="safety net: stop U-Net training once the run is this many seconds old (0: never)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--caption-dropout", type=float, default=0.1)
    ap.add_argument("--offset-noise", type=float, default=0.05)
    ap.add_argument("--cfg", type=float, default=5.0)
    ap.add_argument("--eval-prompts", type=int, default=96)
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run that exercises every stage")
    args = ap.parse_args(argv)
    if args.smoke:
        args.vae_steps, args.vae_batch, args.scale_images, args.pool = 3, 4, 16, 32
        args.unet_steps, args.batch, args.eval_prompts = 3, 8, 4
        torch.set_num_threads(2)

    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest conv kernels once
    logfile = open(args.out / "train_log.txt", "w")
    log(f"args: {json.dumps({k: str(v) for k, v in vars(args).items()})}", logfile)
    t_start = args.t_start = time.time()

    vae, unet, text_encoder = build_models()
    vae.to(device)  # (channels_last measured slower for these narrow convs on an H100)
    sizes = {name: sum(p.numel() for p in m.parameters()) for name, m in
             (("vae", vae), ("unet", unet), ("text_encoder", text_encoder))}
    log(f"parameters: {sizes}", logfile)

    vae_stats = train_vae(vae, args, device, logfile)
    vae.requires_grad_(False)
    latent = latent_statistics(vae, args, device)
    scale = 1.0 / latent["std"]
    log(f"latents: {json.dumps(latent)} -> scale {scale:.5f}", logfile)
    save_grid(torch.cat([(world_images(args.seed + 7, 8, device)[0] + 1) / 2,
                         ((vae.decode(vae.encode(world_images(args.seed + 7, 8, device)[0]).latent_dist.mode()).sample
                           + 1) / 2).clamp(0, 1).detach()]), args.out / "vae_recon.png", columns=8)

    pool = build_latent_pool(vae, args, device, logfile)
    unet.to(device)
    text_encoder.to(device)
    unet_stats = train_unet(unet, text_encoder, pool, scale, args, device, logfile)
    del pool
    metrics = evaluate(unet, text_encoder, vae, scale, args, device, args.out, logfile)

    info = dict(seed=args.seed, image_size=IMAGE_SIZE, latent_downscale=LATENT_DOWNSCALE, latent_scale=scale,
                vae=vae_stats, latents=latent, unet=unet_stats, eval=metrics, parameters=sizes,
                total_seconds=time.time() - t_start, device=torch.cuda.get_device_name() if device.type == "cuda" else "cpu")
    export_diffusers(vae, unet, text_encoder, scale, info, args.out)
    (args.out / "metrics.json").write_text(json.dumps(info, indent=2))
    log(f"done in {time.time() - t_start:.0f}s", logfile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
