"""Train the default world's StyleGAN2-lite and its realism scorer (shipped in nodes/gan/weights/).

1. A StyleGAN2 generator (nodes/gan/stylegan.py: mapping network, modulated convs with
   demodulation, noise inputs, skip ToRGBs; z = w = 128, 4 mapping layers, widths 128-128-128-64-64
   from 4x4 to 64x64) against a StyleGAN2-style residual discriminator (equalised lr, minibatch
   stddev; kept only for training), non-saturating logistic loss, lazy R1 (gamma 0.05 every 16
   steps), style-mixing regularisation (p 0.9), Adam 0.0025 / betas (0, 0.99), an EMA of G
   (half-life 10 images per 32 of batch, as StyleGAN2-ADA, ramped up) and the tracked w_avg for
   truncation. Data: default-world pictures at 64x64, drawn on the fly by training/default_world.
   A step is bound by launching small kernels, not by arithmetic, so the batch is large (256) and
   each launch does more: bf16 autocast for the G and D forwards on a GPU (the R1 pass stays fp32),
   fused Adam, the EMA as one foreach lerp, cuDNN autotuning.
2. A PatchGAN scorer (the shipped layout of train_gan.py: NLayerDiscriminator ndf 32, n_layers 3,
   no norm) trained with the final EMA generator frozen: real pictures vs its samples (random noise,
   psi 1) and obviously wrong images, light R1, so best-of-N can rank this generator's samples.

The generator is saved in NVIDIA's official layout (the same keys as a stylegan2-ada-pytorch G_ema)
as fp16 safetensors; the scorer in the PatchGAN layout.

    python training/train_stylegan.py --device cuda --samples /tmp/sg          # ~6.5 minutes on one H100
    python training/train_stylegan.py --smoke --device cpu --out /tmp/sg_smoke  # plumbing check, ~1 minute
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

from nodes.gan.architectures import patchgan_discriminator  # noqa: E402
from nodes.gan.stylegan import StyleGANConfig  # noqa: E402
from training.train_gan import (RESOLUTION, bce, looks_like_world, real_batch, save, to_grid,  # noqa: E402
                                wrong_images)

CONFIG = StyleGANConfig(z_dim=128, w_dim=128, mapping_layers=4, channels={4: 128, 8: 128, 16: 128, 32: 64, 64: 64})
D_CHANNELS = {64: 32, 32: 64, 16: 128, 8: 256, 4: 256}
R1_GAMMA = 0.05
R1_EVERY = 16
MIXING_PROB = 0.9
W_AVG_BETA = 0.995
G_FILE = "default-world-stylegan2-G.safetensors"
D_FILE = "default-world-stylegan2-patchgan-D.safetensors"


# --- the training discriminator (StyleGAN2's residual design, small) -----------------------------------
class EqConv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.gain, self.pad = 1 / math.sqrt(cin * k * k), k // 2

    def forward(self, x):
        return F.conv2d(x, self.weight * self.gain, self.bias, padding=self.pad)


class EqLinear(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.gain = 1 / math.sqrt(cin)

    def forward(self, x):
        return F.linear(x, self.weight * self.gain, self.bias)


def act(x):
    return F.leaky_relu(x, 0.2) * math.sqrt(2)


class DBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv0, self.conv1, self.skip = EqConv(cin, cin, 3), EqConv(cin, cout, 3), EqConv(cin, cout, 1, bias=False)

    def forward(self, x):
        y = self.skip(F.avg_pool2d(x, 2))
        x = F.avg_pool2d(act(self.conv1(act(self.conv0(x)))), 2)
        return (x + y) / math.sqrt(2)


class ResidualDiscriminator(nn.Module):
    def __init__(self, channels: dict[int, int] = D_CHANNELS) -> None:
        super().__init__()
        res = sorted(channels, reverse=True)
        self.fromrgb = EqConv(3, channels[res[0]], 1)
        self.blocks = nn.ModuleList(DBlock(channels[r], channels[r // 2]) for r in res[:-1])
        c = channels[res[-1]]
        self.conv = EqConv(c + 1, c, 3)
        self.fc = EqLinear(c * 16, c)
        self.out = EqLinear(c, 1)

    def forward(self, img):
        x = act(self.fromrgb(img))
        for block in self.blocks:
            x = block(x)
        n = x.shape[0]
        g = min(4, n)
        y = x.reshape(g, -1, *x.shape[1:])  # minibatch stddev over groups of g
        y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean(dim=(1, 2, 3))
        y = y.reshape(-1, 1, 1, 1).repeat(g, 1, *x.shape[2:])
        x = act(self.conv(torch.cat([x, y], 1)))
        return self.out(act(self.fc(x.flatten(1))))


# --- training ------------------------------------------------------------------------------------------
def logistic(logits, real: bool):
    return F.softplus(-logits if real else logits).mean()


def autocast(device, enabled: bool):
    """bf16 autocast on a GPU (bf16 keeps fp32's range: no loss scaling, no clamping needed)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


def adam(params, lr: float, betas, device):
    """Adam as one fused kernel on a GPU (one launch for all tensors), foreach on the CPU."""
    fused = device.type == "cuda"
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=1e-8, fused=fused, foreach=None if fused else True)


def mapped_ws(G, z, mixing: bool, gen, choices: np.random.Generator):
    """W+ for a batch; with style-mixing regularisation, a second z takes over from a random layer
    (the choice is drawn on the host: no device sync)."""
    w = G.mapping(z)
    ws = w[:, None].repeat(1, G.num_ws, 1)
    if mixing and choices.random() < MIXING_PROB:
        cut = int(choices.integers(1, G.num_ws))
        w2 = G.mapping(torch.randn(z.shape, generator=gen, device=z.device))
        ws[:, cut:] = w2[:, None]
    return ws, w


def train_stylegan(args, device):
    torch.manual_seed(args.seed)
    G, D = CONFIG.build().to(device).train(), ResidualDiscriminator().to(device)
    if args.resume:  # continue from a saved generator (its EMA weights); the discriminator starts afresh
        from nodegraph import read_weights
        from nodes.gan.stylegan_layouts import load_stylegan

        G.load_state_dict(load_stylegan(read_weights(args.resume).tensors, args.resume)[0].state_dict())
        G.train().requires_grad_(True)
    choices = np.random.default_rng(args.seed + 2)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    ema_params, params = list(G_ema.parameters()), list(G.parameters())
    ema_buffers, buffers = list(G_ema.buffers()), list(G.buffers())
    opt_g = adam(G.parameters(), args.lr, (0.0, 0.99), device)
    r1_ratio = R1_EVERY / (R1_EVERY + 1)  # lazy regularisation: adjust D's Adam for the extra steps
    opt_d = adam(D.parameters(), args.lr * r1_ratio, (0.0, 0.99 ** r1_ratio), device)
    ema_images = args.ema_images if args.ema_images is not None else args.batch * 10 / 32 * 1000
    gen = torch.Generator(device).manual_seed(args.seed + 1)
    start, step, log, images = time.time(), 0, [], 0
    while step < args.steps and time.time() - start < args.seconds:
        real = real_batch(args.seed * 10**6 + step, args.batch, device)
        # generator step
        z = torch.randn(args.batch, CONFIG.z_dim, device=device, generator=gen)
        with autocast(device, args.amp):
            ws, w = mapped_ws(G, z, True, gen, choices)
            logits = D(G(ws, noise_mode="random"))
        loss_g = logistic(logits.float(), True)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        with torch.no_grad():
            G.mapping.w_avg.copy_(w.detach().float().mean(0).lerp(G.mapping.w_avg, W_AVG_BETA))
        # discriminator step (+ lazy R1)
        with torch.no_grad(), autocast(device, args.amp):
            z = torch.randn(args.batch, CONFIG.z_dim, device=device, generator=gen)
            fake = G(mapped_ws(G, z, True, gen, choices)[0], noise_mode="random")
        with autocast(device, args.amp):
            real_logits, fake_logits = D(real).float(), D(fake.float()).float()
        loss_d = logistic(real_logits, True) + logistic(fake_logits, False)
        if step % R1_EVERY == 0:  # lazy R1, its own fp32 pass (double backward in bf16 is too coarse)
            real_r1 = real.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(D(real_r1).sum(), real_r1, create_graph=True)
            loss_d = loss_d + R1_GAMMA / 2 * grad.square().sum(dim=(1, 2, 3)).mean() * R1_EVERY
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # EMA of G (StyleGAN2-ADA: half-life 10 images per batch-32 step, ramped up over the first images)
        images += args.batch
        half_life = min(ema_images, images * 0.05)
        beta = 0.5 ** (args.batch / max(half_life, 1e-8))
        with torch.no_grad():  # e <- p + beta (e - p), all tensors in one launch
            torch._foreach_lerp_(ema_params, params, 1.0 - beta)
            torch._foreach_copy_(ema_buffers, buffers)
        if step == 20:
            timing_start = time.time()
        if step == 220:
            print(f"{(time.time() - timing_start) / 200 * 1000:.1f} ms per step", flush=True)
        if step % args.log_every == 0:
            log.append((step, round(time.time() - start, 1), round(loss_d.item(), 4), round(loss_g.item(), 4)))
            print(f"stylegan step {step} t={time.time() - start:.0f}s loss_d={loss_d.item():.3f} "
                  f"loss_g={loss_g.item():.3f}", flush=True)
        step += 1
    return G_ema, {"resumed_from": args.resume, "steps": step, "seconds": round(time.time() - start, 1), "images": images, "log": log,
                   "generator": CONFIG.describe(), "r1_gamma": R1_GAMMA, "batch": args.batch, "lr": args.lr,
                   "ema_half_life_images": ema_images, "bf16_autocast": args.amp and device.type == "cuda"}


@torch.no_grad()
def sample(G, count: int, device, seed: int, psi: float = 1.0, noise_mode: str = "random") -> torch.Tensor:
    gen = torch.Generator(device).manual_seed(seed)
    out = []
    for start in range(0, count, 256):
        z = torch.randn(min(256, count - start), CONFIG.z_dim, device=device, generator=gen)
        out.append(G(G.map(z, psi), noise_mode=noise_mode, generator=gen).clamp(-1, 1))
    return torch.cat(out)


def train_scorer(G, args, device):
    """A PatchGAN that tells real pictures from this generator's samples (and from noise and blur)."""
    torch.manual_seed(args.seed + 3)
    arch = patchgan_discriminator(input_nc=3, ndf=32, n_layers=3, norm="none")
    D = arch.build().to(device).train()
    opt = adam(D.parameters(), 2e-4, (0.5, 0.999), device)
    gen = torch.Generator(device).manual_seed(args.seed + 4)
    start, step = time.time(), 0
    while step < args.scorer_steps and time.time() - start < args.scorer_seconds:
        real = real_batch(args.seed * 10**6 + 900_000 + step, args.scorer_batch, device).requires_grad_(True)
        fake = sample(G, args.scorer_batch, device, seed=10**7 + step)
        real_logits = D(real)
        loss = bce(real_logits, True) + bce(D(fake), False) + 0.25 * bce(D(wrong_images(real.detach(), gen)), False)
        (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
        loss = loss + 0.05 / 2 * grad.square().sum(dim=(1, 2, 3)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 200 == 0:
            print(f"scorer step {step} t={time.time() - start:.0f}s loss={loss.item():.3f}", flush=True)
        step += 1
    D.eval().requires_grad_(False)
    return D, {"scorer": arch.describe(), "scorer_steps": step, "scorer_seconds": round(time.time() - start, 1)}


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counted half."""
    p, n = positive[:, None], negative[None, :]
    return float((p > n).mean() + 0.5 * (p == n).mean())


@torch.no_grad()
def evaluate(G, D, device, count: int) -> tuple[dict, torch.Tensor]:
    from nodes.eval.extractors import random_extractor
    from nodes.eval.metrics import fid_from_features

    samples = sample(G, count, device, seed=99)
    real, real2 = real_batch(10**9, count, device), real_batch(10**9 + 1, count, device)
    extractor = random_extractor(0).to(device)

    def feats(x):
        return extractor((x + 1) / 2).double().cpu().numpy()

    def world(x):
        return np.array([looks_like_world((s + 1) / 2) for s in x.float().cpu()])

    def score(x):
        return torch.sigmoid(D(x)).mean(dim=(1, 2, 3)).float().cpu().numpy()

    gen_world = world(samples)
    gen_scores, real_scores = score(samples), score(real)
    quarter = count // 4
    order = np.argsort(-gen_scores, kind="stable")
    out = {
        "world_like_generated": gen_world.mean(), "world_like_real": world(real).mean(),
        "world_like_psi_0.7": world(sample(G, count, device, seed=98, psi=0.7)).mean(),
        "world_like_const_noise": world(sample(G, count, device, seed=97, noise_mode="const")).mean(),
        "fid_randomconv_generated_vs_real": fid_from_features(feats(samples), feats(real)),
        "fid_randomconv_real_vs_real": fid_from_features(feats(real2), feats(real)),
        "d_auc_real_vs_generated": roc_auc(real_scores, gen_scores),
        "d_score_real": real_scores.mean(), "d_score_generated": gen_scores.mean(),
        "best_quarter_world_like": gen_world[order[:quarter]].mean(),
        "other_three_quarters_world_like": gen_world[order[quarter:]].mean(),
    }
    return {k: round(float(v), 4) for k, v in out.items()}, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=str(ROOT / "nodes" / "gan" / "weights"))
    parser.add_argument("--samples", default=None, help="folder for sample grids and metrics.json (default: --out)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.0025)
    parser.add_argument("--seconds", type=float, default=330)
    parser.add_argument("--steps", type=int, default=10**9)
    parser.add_argument("--ema-images", type=float, default=None,
                        help="EMA half-life in images (default: 10 per 32 of batch, in thousands, as StyleGAN2-ADA)")
    parser.add_argument("--scorer-batch", type=int, default=128)
    parser.add_argument("--no-amp", dest="amp", action="store_false", help="fp32 throughout on a GPU too")
    parser.add_argument("--log-every", type=int, default=500)
    parser.add_argument("--scorer-seconds", type=float, default=60)
    parser.add_argument("--scorer-steps", type=int, default=3000)
    parser.add_argument("--eval-count", type=int, default=1024)
    parser.add_argument("--resume", default=None, help="a generator file to continue from (EMA weights)")
    parser.add_argument("--smoke", action="store_true", help="a few steps on small batches (plumbing check)")
    args = parser.parse_args()
    if args.smoke:
        args.batch, args.scorer_batch, args.steps, args.scorer_steps, args.eval_count, args.ema_images = 8, 8, 6, 4, 32, 100
    torch.set_num_threads(2)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    device = torch.device(args.device)
    out = Path(args.out)
    samples_dir = Path(args.samples) if args.samples else out

    common = {"trained_by": "training/train_stylegan.py", "dataset": "training/default_world",
              "resolution": RESOLUTION, "seed": args.seed}
    G, info = train_stylegan(args, device)
    # the generator and a first grid are written before the scorer and the evaluation run, so a run
    # cut off by a device time limit still leaves the trained generator behind
    sizes = {G_FILE: save(G, out / G_FILE, {**common, "architecture": CONFIG.describe(), "layout": "nvidia",
                                            "config": json.dumps(CONFIG.as_dict()), "steps": info["steps"],
                                            "weights": "EMA"})}
    samples_dir.mkdir(parents=True, exist_ok=True)
    to_grid(sample(G, 64, device, seed=99)).save(samples_dir / "stylegan_samples.png")
    (samples_dir / "stylegan_metrics.json").write_text(json.dumps({"stylegan": info}, indent=2) + "\n")
    D, scorer_info = train_scorer(G, args, device)
    metrics, samples = evaluate(G, D, device, args.eval_count)
    print("stylegan:", json.dumps(metrics), flush=True)
    sizes[D_FILE] = save(D, out / D_FILE, {**common, "architecture": scorer_info["scorer"], "gan_mode": "vanilla",
                                           "scores": "real default-world pictures vs " + G_FILE})
    to_grid(samples).save(samples_dir / "stylegan_samples.png")
    report = {"stylegan": {**info, **scorer_info, **metrics}, "file_bytes": sizes, "device": str(device),
              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    (samples_dir / "stylegan_metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "stylegan"} | {"metrics": metrics}, indent=1))


if __name__ == "__main__":
    main()
