"""Train the default world's shape ControlNet for the embedded default model (training/CONTROLNET.md).

The default model follows colour and shape words but mostly ignores position words; this ControlNet
puts the shape where a control image says. Control images (white on black, 128x128, RGB):
  - the shape's filled silhouette (its mask, thresholded), or
  - the silhouette's outline as Canny edges (nodes/image/preprocessors.canny_edges, the Canny node),
one or the other at random per sample, so either kind of drawing works.

Stages, deterministic from --seed (up to GPU kernel non-determinism):
  1. load the shipped default checkpoint (nodes/diffusion/weights/nodegraph-default.safetensors);
  2. a pool of world scenes: VAE latents (posterior mean and std, re-sampled every step), control
     images, caption tokens;
  3. ControlNetModel.from_unet(default U-Net) (encoder copied, zero convs at zero) trained with the
     SD objective (eps MSE, min-SNR-5 weights) against the frozen U-Net and text encoder, 30% of the
     captions dropped to the empty prompt (CFG runs the ControlNet on both sides), EMA of the weights;
  4. evaluation: DDIM samples of held-out scenes whose captions name NO position (and, for half of
     them, a wrong one): distance between the generated shape's centroid and the control's, IoU of
     the shapes, colour accuracy, with and without the ControlNet;
  5. export in the original single-file ControlNet layout (control_model.*, fp16, metadata on the
     training run) and a check that the file loads back through the project's loader unchanged.

GPU:   python3 training/train_controlnet.py --out $OUT/controlnet
CPU:   python training/train_controlnet.py --smoke --out /tmp/cn-smoke   (every stage, ~1 minute)
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "training"))
from nodes.diffusion.checkpoint.single_file import load_checkpoint  # noqa: E402
from nodes.diffusion.controlnet_files import controlnet_from_unet, load_controlnet_file, save_controlnet  # noqa: E402
from training.default_world import (POSITION_NAMES, make_caption, read_image, render,  # noqa: E402
                                           sample_scenes, token_ids)
from nodes.image.preprocessors import canny_edges  # noqa: E402
from train_default import (TRAIN_TIMESTEPS, alphas_cumprod, cosine_lr, ddim_sample, eps_step, log,  # noqa: E402
                           save_grid)

DEFAULT_CHECKPOINT = ROOT / "nodes" / "diffusion" / "weights" / "nodegraph-default.safetensors"
EXPORT_NAME = "nodegraph-default-shape-controlnet.safetensors"
IMAGE_SIZE = 128
EMBEDDING_CHANNELS = (16, 32, 64, 128)  # hint 128x128 -> 16x16 in three stride-2 convs


def control_images(masks: torch.Tensor, use_edges: torch.Tensor) -> torch.Tensor:
    """Shape masks [B,1,H,W] -> control images [B,3,H,W] (white on black): the silhouette, or its
    Canny outline where use_edges [B] is True."""
    silhouette = (masks > 0.5).float()
    out = silhouette.clone()
    if bool(use_edges.any()):
        out[use_edges] = canny_edges(silhouette[use_edges], 0.4, 0.8)
    return out.expand(-1, 3, -1, -1)


# ------------------------------------------------------------------------------------------ data

@torch.no_grad()
def build_pool(vae, args, device, logfile) -> dict:
    """Latent mean/std, control images (uint8 silhouettes; the edge/silhouette choice is made per
    step) and caption tokens of args.pool world scenes."""
    t0 = time.time()
    chunk = 512 if device.type == "cuda" else 16
    means, stds, masks, tokens = [], [], [], []
    for c in range(math.ceil(args.pool / chunk)):
        scenes = sample_scenes(args.seed * 7919 + 2_000_000 + c, chunk)
        images, mask = render(scenes, size=IMAGE_SIZE, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            posterior = vae.encode(images * 2 - 1).latent_dist
        means.append(posterior.mean.float())
        stds.append(posterior.std.float())
        masks.append((mask > 0.5).to(torch.uint8))
        tokens.append(torch.tensor([token_ids(t) for t in scenes.captions], dtype=torch.long, device=device))
    pool = {k: torch.cat(v)[: args.pool] for k, v in
            (("mean", means), ("std", stds), ("mask", masks), ("tokens", tokens))}
    log(f"pool: {args.pool} scenes encoded in {time.time() - t0:.1f}s", logfile)
    return pool


def drop_captions(tokens: torch.Tensor, generator: torch.Generator, dropout: float) -> torch.Tensor:
    empty = torch.tensor(token_ids(""), device=tokens.device)
    drop = torch.rand(tokens.shape[0], generator=generator, device=tokens.device) < dropout
    return torch.where(drop[:, None], empty[None], tokens)


# -------------------------------------------------------------------------------------- training

def train(controlnet, unet, text_encoder, pool, scale: float, args, device, logfile) -> tuple[dict, list]:
    controlnet.train()
    params = list(controlnet.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    ema = [p.detach().clone().float() for p in params]
    acp = alphas_cumprod().to(device)
    snr = acp / (1 - acp)
    generator = torch.Generator(device=device).manual_seed(args.seed + 11)
    n = pool["mean"].shape[0]
    t0 = time.time()
    stats: dict = {}
    curve = []
    steps_run = 0
    for step in range(args.steps):
        if args.deadline and time.time() - args.t_start > args.deadline:
            log(f"train: stopping at step {step}: {args.deadline}s deadline of the whole run reached", logfile)
            break
        for group in opt.param_groups:
            group["lr"] = args.lr * cosine_lr(step, args.steps, warmup=min(100, args.steps))
        idx = torch.randint(0, n, (args.batch,), generator=generator, device=device)
        latents = (pool["mean"][idx] + pool["std"][idx] * torch.randn(
            pool["mean"][idx].shape, generator=generator, device=device)) * scale
        use_edges = torch.rand(args.batch, generator=generator, device=device) < args.edge_fraction
        hint = control_images(pool["mask"][idx].float(), use_edges)
        ids = drop_captions(pool["tokens"][idx], generator, args.caption_dropout)
        noise = torch.randn(latents.shape, generator=generator, device=device)
        noise = noise + args.offset_noise * torch.randn(latents.shape[0], latents.shape[1], 1, 1,
                                                        generator=generator, device=device)
        t = torch.randint(0, TRAIN_TIMESTEPS, (args.batch,), generator=generator, device=device)

        def predict(noisy: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                context = text_encoder(ids).last_hidden_state
            down, mid = controlnet(noisy, t, encoder_hidden_states=context, controlnet_cond=hint, return_dict=False)
            return unet(noisy, t, context, down_block_additional_residuals=down,
                        mid_block_additional_residual=mid).sample

        loss, per_sample, grad_norm = eps_step(opt, params, predict, latents, noise, t, acp, snr)
        decay = min(args.ema, (1 + step) / (10 + step))
        torch._foreach_lerp_(ema, [p.detach().float() for p in params], 1 - decay)
        steps_run = step + 1
        if step % max(1, args.steps // 40) == 0 or step == args.steps - 1:
            stats = dict(step=step, loss=loss.item(), mse=per_sample.mean().item(), grad_norm=grad_norm.item())
            curve.append(stats)
            log(f"controlnet {step:5d} loss {loss.item():.4f} mse {per_sample.mean().item():.4f} "
                f"gn {grad_norm.item():.3f} ({time.time() - t0:.0f}s)", logfile)
    stats.update(seconds=time.time() - t0, steps_run=steps_run)
    with torch.no_grad():
        for p, e in zip(params, ema):
            p.copy_(e)
    controlnet.eval()
    return stats, curve


# ------------------------------------------------------------------------------------ evaluation

def controlnet_residuals(controlnet, hint):
    """ddim_sample's residuals hook: the ControlNet on both CFG sides, as ControlNetApplyAdvanced does."""
    if controlnet is None:
        return None
    hints = torch.cat([hint, hint])

    def residuals(x, t, context):
        down, mid = controlnet(x, t, encoder_hidden_states=context, controlnet_cond=hints, return_dict=False)
        return dict(down_block_additional_residuals=down, mid_block_additional_residual=mid)
    return residuals


def shape_pixels(image: torch.Tensor, threshold: float = 0.2) -> np.ndarray:
    img = image.permute(1, 2, 0).cpu().numpy()
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    return np.sqrt(((img - np.median(border, axis=0)) ** 2).sum(-1)) > threshold


def evaluate(controlnet, unet, text_encoder, vae, scale, args, device, out: Path, logfile) -> dict:
    """Held-out scenes; captions without a position (half of them with a wrong one)."""
    count = args.eval_count
    scenes = sample_scenes(args.seed + 999_331, count)
    images, masks = render(scenes, size=IMAGE_SIZE, device=device)
    rng = np.random.default_rng(args.seed + 5)
    prompts = []
    for i, s in enumerate(scenes.scenes()):
        wrong = [p for p in POSITION_NAMES if p != s.position]
        position = wrong[rng.integers(len(wrong))] if i % 2 else None
        prompts.append(make_caption(s.shape, s.color, s.background, None, position))
    use_edges = torch.arange(count, device=device) % 4 >= 2  # a quarter of each kind per position case
    hint = control_images(masks, use_edges)
    results = {}
    samples = {}
    for name, net in (("controlnet", controlnet), ("none", None)):
        imgs = []
        for start in range(0, count, args.eval_batch):
            sl = slice(start, start + args.eval_batch)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                imgs.append(ddim_sample(unet, text_encoder, vae, prompts[sl], scale, steps=args.eval_steps,
                                        seed=args.seed + start, device=device,
                                        residuals=controlnet_residuals(net, hint[sl])).float())
        imgs = torch.cat(imgs)
        samples[name] = imgs
        dist, ious, color_ok = [], [], []
        for i in range(count):
            reading = read_image(imgs[i])
            target = masks[i, 0].cpu().numpy() > 0.5
            ty, tx = np.nonzero(target)
            tc = ((tx.mean() + 0.5) / IMAGE_SIZE, (ty.mean() + 0.5) / IMAGE_SIZE)
            if reading.centroid is None:
                dist.append(1.0)
            else:
                dist.append(float(np.hypot(reading.centroid[0] - tc[0], reading.centroid[1] - tc[1])))
            got = shape_pixels(imgs[i])
            ious.append(float((got & target).sum() / max(1, (got | target).sum())))
            color_ok.append(reading.shape_color == scenes.scene(i).color and reading.background == scenes.scene(i).background)
        results[name] = {"centroid_distance_mean": float(np.mean(dist)), "centroid_distance_median": float(np.median(dist)),
                         "within_0.1": float(np.mean(np.array(dist) < 0.1)), "iou_mean": float(np.mean(ious)),
                         "colours_right": float(np.mean(color_ok)),
                         "within_0.1_silhouette": float(np.mean((np.array(dist) < 0.1)[~use_edges.cpu().numpy()])),
                         "within_0.1_edges": float(np.mean((np.array(dist) < 0.1)[use_edges.cpu().numpy()]))}
        log(f"eval {name}: {json.dumps(results[name])}", logfile)
    grid = torch.cat([hint[:8], samples["controlnet"][:8], samples["none"][:8]])
    save_grid(grid.float().clamp(0, 1), out / "eval_samples.png", 8)
    (out / "eval_prompts.txt").write_text("\n".join(prompts[:8]) + "\n")
    return results


# ------------------------------------------------------------------------------------------ main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--pool", type=int, default=65536)
    ap.add_argument("--steps", type=int, default=1600)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--ema", type=float, default=0.995)
    ap.add_argument("--caption-dropout", type=float, default=0.3)
    ap.add_argument("--edge-fraction", type=float, default=0.5, help="share of Canny-outline control images")
    ap.add_argument("--offset-noise", type=float, default=0.05, help="as the default model was trained")
    ap.add_argument("--deadline", type=float, default=165, help="stop training after this many seconds of the run")
    ap.add_argument("--eval-count", type=int, default=128)
    ap.add_argument("--eval-batch", type=int, default=64)
    ap.add_argument("--eval-steps", type=int, default=20)
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run that exercises every stage")
    args = ap.parse_args(argv)
    if args.smoke:
        args.device, args.pool, args.steps, args.batch = "cpu", 64, 6, 4
        args.eval_count, args.eval_batch, args.eval_steps, args.deadline = 8, 8, 3, 0
        torch.set_num_threads(1)
    args.t_start = time.time()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    logfile = open(out / "train_log.txt", "w")
    log(f"args: {json.dumps({k: str(v) for k, v in vars(args).items()})}", logfile)
    torch.manual_seed(args.seed)

    ckpt = load_checkpoint(args.checkpoint)
    unet, vae, text_encoder = ckpt.unet.float(), ckpt.vae.float(), ckpt.text_encoders[0].float()
    scale = float(ckpt.vae_config["scaling_factor"])
    for m in (unet, vae, text_encoder):
        m.to(device).eval().requires_grad_(False)
    controlnet = controlnet_from_unet(unet, conditioning_embedding_out_channels=EMBEDDING_CHANNELS).to(device)
    log(f"default model {args.checkpoint.name}: latent scale {scale:.5f}; ControlNet "
        f"{sum(p.numel() for p in controlnet.parameters()) / 1e6:.2f} M parameters", logfile)

    pool = build_pool(vae, args, device, logfile)
    stats, curve = train(controlnet, unet, text_encoder, pool, scale, args, device, logfile)
    del pool
    metrics = {"train": stats, "curve": curve}
    metrics["eval"] = evaluate(controlnet, unet, text_encoder, vae, scale, args, device, out, logfile)
    metrics["seconds_total"] = time.time() - args.t_start

    training = {"base_model": args.checkpoint.name, "script": "training/train_controlnet.py", "seed": args.seed,
                "steps": stats.get("steps_run"), "batch": args.batch, "lr": args.lr, "ema": args.ema,
                "caption_dropout": args.caption_dropout, "pool": args.pool,
                "control": "white on black 128x128: the shape's filled silhouette or its Canny outline "
                           f"({args.edge_fraction:.0%} outlines)",
                "init": "ControlNetModel.from_unet(default U-Net), zero convs at zero",
                "eval": metrics["eval"], "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu"}
    path = save_controlnet(out / EXPORT_NAME, controlnet, {"nodegraph.training": json.dumps(training),
                                                           "nodegraph.image_size": str(IMAGE_SIZE)})
    loaded = load_controlnet_file(path)  # the shipped file loads back through the project's loader
    own = loaded.module.state_dict()
    worst = max(float((own[k].float() - v.detach().float().cpu()).abs().max()) for k, v in controlnet.state_dict().items())
    log(f"export: {path.name} {path.stat().st_size / 1e6:.2f} MB, layout {loaded.layout}, "
        f"max |fp16 - fp32| {worst:.2e}", logfile)
    metrics["export"] = {"file": path.name, "bytes": path.stat().st_size, "max_abs_fp16_error": worst}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    log(f"done in {time.time() - args.t_start:.0f}s", logfile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
