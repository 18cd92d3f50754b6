"""Train the default world's tiny GANs (the weights shipped in nodes/gan/weights/).

1. An unconditional GAN on default-world pictures at 64x64: a DCGAN generator (nz=64, ngf=32) against
   a PatchGAN discriminator (NLayerDiscriminator, ndf=32, n_layers=3, no norm layers, so its score
   of an image does not depend on the batch), non-saturating (vanilla) loss with a lazy R1 penalty
   (gamma 1, every 4 steps), Adam 2e-4 / beta1 0.5, an EMA of the generator (BatchNorm statistics
   recomputed at the end; the EMA or raw weights are kept, whichever draws more world-like pictures).
   The discriminator also sees obviously wrong images (uniform and blocky noise, blurred and noisy
   real pictures) as fakes, so that its score is a usable realism measure outside the GAN game.
2. The discriminator is refined as a scorer: with the final generator frozen, 300 more steps of
   real vs generated vs wrong images under a lighter R1 (gamma 0.05).
3. A pix2pix generator: a U-Net (num_downs=5, ngf=16, BatchNorm, 1 -> 3 channels) that turns a shape
   mask into the shape painted in its kind's colour on white (circle red, square blue, triangle
   green, diamond purple, star orange, heart pink), trained with L1 (x100) + a conditional PatchGAN.

Both are saved in the public layouts (DCGAN `main.*`, pix2pix `model.model.*`, PatchGAN `model.*`)
as fp16 safetensors with metadata (resolution, gan_mode, task). Data is generated on the fly from
training/default_world, so training is a pure function of the seeds (up to GPU nondeterminism).

    python training/train_gan.py --device cuda                  # ~5.5 minutes on one H100
    python training/train_gan.py --smoke --out /tmp/gan_smoke   # a few CPU steps, checks the plumbing
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import training.default_world as world  # noqa: E402
from nodes.gan.architectures import dcgan_generator, patchgan_discriminator, unet_generator  # noqa: E402

RESOLUTION = 64
NZ = 64
R1_GAMMA = 1.0  # the discriminator has no norm layers: R1 keeps it smooth on the data (as in StyleGAN)
R1_EVERY = 4
WRONG_WEIGHT = 0.25
REFINE_R1_GAMMA = 0.05
SHAPE_COLORS = {"circle": "red", "square": "blue", "triangle": "green", "diamond": "purple", "star": "orange",
                "heart": "pink"}
PIX2PIX_BACKGROUND = "white"


# --- data ---------------------------------------------------------------------------------------------
def real_batch(seed: int, count: int, device) -> torch.Tensor:
    """Default-world pictures in -1..1."""
    return world.generate(seed=seed, count=count, size=RESOLUTION, device=device).images * 2 - 1


def wrong_images(real: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Images that are clearly not default-world pictures, as extra fakes for the discriminator."""
    n = max(1, real.shape[0] // 4)
    dev = real.device
    uniform = torch.rand(n, 3, RESOLUTION, RESOLUTION, generator=generator, device=dev) * 2 - 1
    blocky = F.interpolate(torch.rand(n, 3, 8, 8, generator=generator, device=dev) * 2 - 1, size=RESOLUTION,
                           mode="nearest")
    blurred = F.avg_pool2d(real[:n], 9, stride=1, padding=4, count_include_pad=False)
    noisy = (real[n:2 * n] + 0.5 * torch.randn(real[n:2 * n].shape, generator=generator, device=dev)).clamp(-1, 1)
    return torch.cat([uniform, blocky, blurred, noisy])


def pix2pix_batch(seed: int, count: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask in -1..1 [B,1,H,W], target in -1..1 [B,3,H,W]): the shape in its kind's colour on white."""
    scenes = world.sample_scenes(seed, count)
    _, masks = world.render(scenes, size=RESOLUTION, device=device)
    kinds = [world.SHAPES[k] for k in scenes.shape]
    fg = torch.tensor([world.COLORS[SHAPE_COLORS[k]] for k in kinds], device=device).view(-1, 3, 1, 1)
    bg = torch.tensor(world.COLORS[PIX2PIX_BACKGROUND], device=device).view(1, 3, 1, 1)
    target = bg + (fg - bg) * masks
    return masks * 2 - 1, target * 2 - 1


# --- helpers -----------------------------------------------------------------------------------------
def dcgan_init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - decay)


@torch.no_grad()
def recalibrate_batchnorm(generator: nn.Module, device, batches: int = 50, batch: int = 256) -> None:
    """Recompute BatchNorm running statistics for the (EMA) weights: cumulative average over batches."""
    norms = [m for m in generator.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    generator.train()
    g = torch.Generator(device).manual_seed(1234)
    for _ in range(batches):
        generator(torch.randn(batch, NZ, 1, 1, device=device, generator=g))
    for m in norms:
        m.momentum = 0.1
    generator.eval()


def bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def save(module: nn.Module, path: Path, meta: dict) -> int:
    from safetensors.torch import save_file

    tensors = {k: (v.half() if v.is_floating_point() else v).contiguous().cpu() for k, v in module.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={k: str(v) for k, v in meta.items()})
    return path.stat().st_size


def to_grid(images: torch.Tensor, columns: int = 8) -> "Image":
    from PIL import Image

    x = ((images[: columns * columns].float().clamp(-1, 1) + 1) * 127.5).round().byte().cpu()
    b, c, h, w = x.shape
    rows = math.ceil(b / columns)
    grid = torch.full((c, rows * (h + 2), columns * (w + 2)), 255, dtype=torch.uint8)
    for k in range(b):
        r, q = divmod(k, columns)
        grid[:, r * (h + 2):r * (h + 2) + h, q * (w + 2):q * (w + 2) + w] = x[k]
    return Image.fromarray(grid.permute(1, 2, 0).numpy())


# --- training ---------------------------------------------------------------------------------------
def train_gan(args, device) -> tuple[nn.Module, nn.Module, dict]:
    torch.manual_seed(args.seed)
    g_arch = dcgan_generator(nz=NZ, ngf=32, nc=3, resolution=RESOLUTION)
    d_arch = patchgan_discriminator(input_nc=3, ndf=32, n_layers=3, norm="none")  # no batch coupling: scores per image
    G, D = g_arch.build().to(device), d_arch.build().to(device)
    dcgan_init(G)
    dcgan_init(D)
    G_ema = copy.deepcopy(G).eval()
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    noise_gen = torch.Generator(device).manual_seed(args.seed + 1)
    start, step, log = time.time(), 0, []
    while step < args.gan_steps and time.time() - start < args.gan_seconds:
        real = real_batch(args.seed * 10**6 + step, args.batch, device)
        z = torch.randn(args.batch, NZ, 1, 1, device=device, generator=noise_gen)
        fake = G(z)
        regularise = step % R1_EVERY == 0
        real.requires_grad_(regularise)
        real_logits = D(real)
        loss_d = bce(real_logits, True) + bce(D(fake.detach()), False) \
            + WRONG_WEIGHT * bce(D(wrong_images(real.detach(), noise_gen)), False)
        if regularise:  # R1: penalise the gradient on real images (lazy: every R1_EVERY steps, scaled up)
            (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
            loss_d = loss_d + R1_GAMMA / 2 * grad.pow(2).sum(dim=(1, 2, 3)).mean() * R1_EVERY
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = bce(D(fake), True)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        ema_update(G_ema, G, 0.999 if step > 500 else 0.9)
        if step % 500 == 0:
            log.append((step, round(time.time() - start, 1), round(loss_d.item(), 4), round(loss_g.item(), 4)))
            print(f"gan step {step} t={time.time() - start:.0f}s loss_d={loss_d.item():.3f} loss_g={loss_g.item():.3f}",
                  flush=True)
        step += 1
    recalibrate_batchnorm(G_ema, device, batches=5 if args.smoke else 50)
    G.eval()
    D.eval()
    return G, G_ema, D, {"steps": step, "seconds": round(time.time() - start, 1), "log": log,
                         "generator": g_arch.describe(), "discriminator": d_arch.describe()}


def refine_discriminator(G: nn.Module, D: nn.Module, args, device) -> tuple[nn.Module, dict]:
    """Make the discriminator a usable realism scorer: with the final generator frozen, train it
    further (real vs the generator's samples and the wrong images) under a light R1 penalty, so that
    it ranks sharp default-world pictures above blobs, blur and noise."""
    torch.manual_seed(args.seed + 3)
    D.train().requires_grad_(True)
    G.eval()
    opt = torch.optim.Adam(D.parameters(), lr=1e-4, betas=(0.5, 0.999))
    gen = torch.Generator(device).manual_seed(args.seed + 4)
    batch = args.refine_batch
    start, step = time.time(), 0
    while step < args.refine_steps:
        real = real_batch(args.seed * 10**6 + 900_000 + step, batch, device).requires_grad_(True)
        with torch.no_grad():
            fake = G(torch.randn(batch, NZ, 1, 1, device=device, generator=gen))
        real_logits = D(real)
        loss = bce(real_logits, True) + bce(D(fake), False) + bce(D(wrong_images(real.detach(), gen)), False)
        (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
        loss = loss + REFINE_R1_GAMMA / 2 * grad.pow(2).sum(dim=(1, 2, 3)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0:
            print(f"refine step {step} t={time.time() - start:.0f}s loss={loss.item():.3f}", flush=True)
        step += 1
    D.eval().requires_grad_(False)
    return D, {"refine_steps": step, "refine_seconds": round(time.time() - start, 1), "refine_r1_gamma": REFINE_R1_GAMMA}


def train_pix2pix(args, device) -> tuple[nn.Module, dict]:
    torch.manual_seed(args.seed + 7)
    g_arch = unet_generator(input_nc=1, output_nc=3, num_downs=5, ngf=16, norm="batch")
    d_arch = patchgan_discriminator(input_nc=4, ndf=32, n_layers=2, norm="batch")  # sees cat(mask, image)
    G, D = g_arch.build().to(device), d_arch.build().to(device)
    dcgan_init(G)
    dcgan_init(D)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    start, step = time.time(), 0
    while step < args.pix2pix_steps and time.time() - start < args.pix2pix_seconds:
        mask, target = pix2pix_batch(args.seed * 10**6 + 500_000 + step, args.batch, device)
        fake = G(mask)
        loss_d = 0.5 * (bce(D(torch.cat([mask, target], 1)), True) + bce(D(torch.cat([mask, fake.detach()], 1)), False))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        l1 = (fake - target).abs().mean()
        loss_g = bce(D(torch.cat([mask, fake], 1)), True) + 100 * l1
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        if step % 500 == 0:
            print(f"pix2pix step {step} t={time.time() - start:.0f}s loss_d={loss_d.item():.3f} l1={l1.item():.4f}",
                  flush=True)
        step += 1
    G.eval()
    return G, {"steps": step, "seconds": round(time.time() - start, 1), "generator": g_arch.describe()}


# --- evaluation -------------------------------------------------------------------------------------
def palette_distance(rgb) -> float:
    return float(np.sqrt(((world.vocabulary.PALETTE - np.asarray(rgb, dtype=np.float32)) ** 2).sum(-1)).min())


def looks_like_world(image01: torch.Tensor) -> bool:
    """One flat shape on a plain background, both close to palette colours (per the world's reader)."""
    img = image01.permute(1, 2, 0).numpy()  # [H, W, 3]
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    if border.std(axis=0).mean() > 0.06:  # the background is one colour
        return False
    r = world.read_image(img)
    if r.shape_color is None or not 0.01 < r.shape_fraction < 0.5:
        return False
    shape_pixels = np.sqrt(((img - np.array(r.background_rgb)) ** 2).sum(-1)) > 0.2
    fill = np.sqrt(((img[shape_pixels] - np.array(r.shape_rgb)) ** 2).sum(-1)) < 0.15
    if fill.mean() < 0.6:  # the shape is one colour (anti-aliased edges of small stars aside)
        return False
    return palette_distance(r.background_rgb) < 0.15 and palette_distance(r.shape_rgb) < 0.2


@torch.no_grad()
def evaluate_gan(G: nn.Module, D: nn.Module, device, count: int) -> dict:
    from nodes.eval.extractors import random_extractor
    from nodes.eval.metrics import fid_from_features

    gen = torch.Generator(device).manual_seed(99)
    samples = torch.cat([G(torch.randn(256, NZ, 1, 1, device=device, generator=gen)) for _ in range(count // 256 or 1)])
    samples = samples[:count]
    real = real_batch(10**9, samples.shape[0], device)
    real2 = real_batch(10**9 + 1, samples.shape[0], device)
    noise = torch.rand(real.shape, device=device, generator=gen) * 2 - 1

    def score(x):
        return torch.sigmoid(D(x)).mean(dim=(1, 2, 3))

    extractor = random_extractor(0).to(device)

    def feats(x):
        return extractor((x + 1) / 2).double().cpu().numpy()

    out = {
        "d_score_real": float(score(real).mean()), "d_score_generated": float(score(samples).mean()),
        "d_score_uniform_noise": float(score(noise).mean()),
        "d_score_blurred_real": float(score(F.avg_pool2d(real, 9, 1, 4, count_include_pad=False)).mean()),
        "world_like_generated": float(np.mean([looks_like_world((s + 1) / 2) for s in samples.cpu()])),
        "world_like_real": float(np.mean([looks_like_world((s + 1) / 2) for s in real.cpu()])),
        "fid_randomconv_generated_vs_real": fid_from_features(feats(samples), feats(real)),
        "fid_randomconv_real_vs_real": fid_from_features(feats(real2), feats(real)),
        "fid_randomconv_noise_vs_real": fid_from_features(feats(noise), feats(real)),
    }
    return {k: round(v, 4) for k, v in out.items()}, samples


@torch.no_grad()
def evaluate_pix2pix(G: nn.Module, device, count: int) -> dict:
    mask, target = pix2pix_batch(2 * 10**9, count, device)
    out = ((G(mask) + 1) / 2).cpu()
    scenes = world.sample_scenes(2 * 10**9, count)
    inside = (mask.cpu() > 0).squeeze(1)
    right_colour, ious = [], []
    for k in range(count):
        expected = SHAPE_COLORS[world.SHAPES[scenes.shape[k]]]
        pixels = out[k].permute(1, 2, 0)[inside[k]]
        right_colour.append(world.nearest_color(pixels.median(0).values.numpy()) == expected)
        bg = torch.tensor(world.COLORS[PIX2PIX_BACKGROUND])
        painted = ((out[k].permute(1, 2, 0) - bg).norm(dim=-1) > 0.3)
        ious.append(float((painted & inside[k]).sum() / (painted | inside[k]).sum().clamp_min(1)))
    l1 = float((out * 2 - 1 - target.cpu()).abs().mean())
    return {"colour_accuracy": round(float(np.mean(right_colour)), 4), "mean_iou": round(float(np.mean(ious)), 4),
            "l1": round(l1, 4)}, out, mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=str(ROOT / "nodes" / "gan" / "weights"))
    parser.add_argument("--samples", default=None, help="folder for sample grids and the metrics JSON")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--gan-seconds", type=float, default=230)
    parser.add_argument("--gan-steps", type=int, default=10**9)
    parser.add_argument("--pix2pix-seconds", type=float, default=75)
    parser.add_argument("--pix2pix-steps", type=int, default=10**9)
    parser.add_argument("--eval-count", type=int, default=1024)
    parser.add_argument("--skip-pix2pix", action="store_true", help="train only the unconditional GAN")
    parser.add_argument("--refine-steps", type=int, default=300, help="discriminator-as-scorer refinement steps")
    parser.add_argument("--refine-batch", type=int, default=64)
    parser.add_argument("--resume", default=None, help="folder with the G and D files: skip GAN training")
    parser.add_argument("--smoke", action="store_true", help="a few steps on small batches (plumbing check)")
    args = parser.parse_args()
    if args.smoke:
        args.batch, args.gan_steps, args.pix2pix_steps, args.eval_count = 16, 20, 20, 64
        args.refine_steps, args.refine_batch = 5, 16
    torch.set_num_threads(2)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    device = torch.device(args.device)
    out = Path(args.out)
    samples_dir = Path(args.samples) if args.samples else out

    if args.resume:  # continue from saved generator + discriminator files (e.g. to refine the scorer)
        from nodes.gan.loaders import load_gan_file

        G, D = (load_gan_file(Path(args.resume) / name)[1].float().to(device) for name in
                ("default-world-dcgan-G.safetensors", "default-world-patchgan-D.safetensors"))
        gan_info = json.loads((Path(args.resume) / "metrics.json").read_text())["gan"] \
            if (Path(args.resume) / "metrics.json").exists() else {}
        gan_info = {k: gan_info[k] for k in ("steps", "seconds", "log", "generator", "discriminator", "weights")
                    if k in gan_info} | {"resumed_from": str(args.resume)}
    else:
        G_raw, G_ema, D, gan_info = train_gan(args, device)
        raw_metrics, _ = evaluate_gan(G_raw, D, device, args.eval_count)
        ema_metrics, _ = evaluate_gan(G_ema, D, device, args.eval_count)
        print("gan (raw weights):", json.dumps(raw_metrics), flush=True)
        print("gan (EMA weights):", json.dumps(ema_metrics), flush=True)
        better_raw = raw_metrics["world_like_generated"] > ema_metrics["world_like_generated"]
        G, gan_info["weights"] = (G_raw, "raw") if better_raw else (G_ema, "ema")
        gan_info["before_refine"] = raw_metrics if better_raw else ema_metrics
    if args.refine_steps:
        D, refine_info = refine_discriminator(G, D, args, device)
        gan_info |= refine_info
    gan_metrics, samples = evaluate_gan(G, D, device, args.eval_count)
    print("gan:", json.dumps(gan_metrics), flush=True)
    if not args.skip_pix2pix:
        P, p2p_info = train_pix2pix(args, device)
        p2p_metrics, translated, masks = evaluate_pix2pix(P, device, min(256, args.eval_count))
        print("pix2pix:", json.dumps(p2p_metrics), flush=True)

    common = {"trained_by": "training/train_gan.py", "dataset": "training/default_world",
              "resolution": RESOLUTION, "gan_mode": "vanilla", "seed": args.seed}
    sizes = {
        "default-world-dcgan-G.safetensors": save(G, out / "default-world-dcgan-G.safetensors", {
            **common, "architecture": gan_info["generator"], "steps": gan_info["steps"],
            "weights": "EMA 0.999, BatchNorm recalibrated" if gan_info.get("weights") == "ema" else "raw"}),
        "default-world-patchgan-D.safetensors": save(D, out / "default-world-patchgan-D.safetensors", {
            **common, "architecture": gan_info["discriminator"], "steps": gan_info["steps"], "r1_gamma": R1_GAMMA,
            "refined_as_scorer": f"{gan_info.get('refine_steps', 0)} steps, R1 gamma {REFINE_R1_GAMMA}",
            "extra_fakes": "uniform noise, blocky noise, blurred and noisy real images"}),
    }
    samples_dir.mkdir(parents=True, exist_ok=True)
    to_grid(samples).save(samples_dir / "gan_samples.png")
    report = {"gan": {**gan_info, **gan_metrics}}
    if not args.skip_pix2pix:
        sizes["default-world-pix2pix-G.safetensors"] = save(P, out / "default-world-pix2pix-G.safetensors", {
            **common, "architecture": p2p_info["generator"], "steps": p2p_info["steps"],
            "task": "shape mask (1 channel) -> the shape in its kind's colour on white",
            "shape_colors": json.dumps(SHAPE_COLORS), "background": PIX2PIX_BACKGROUND})
        pairs = torch.stack([t for k in range(min(32, translated.shape[0]))
                             for t in (masks[k].expand(3, -1, -1).cpu(), translated[k] * 2 - 1)])
        to_grid(pairs).save(samples_dir / "pix2pix_samples.png")
        report["pix2pix"] = {**p2p_info, **p2p_metrics}
    report |= {"file_bytes": sizes,
              "total_bytes": sum(sizes.values()), "device": str(device),
              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    (samples_dir / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "gan"} | {"gan": gan_metrics}, indent=1))


if __name__ == "__main__":
    main()
