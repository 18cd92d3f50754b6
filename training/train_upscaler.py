"""Train the default world's tiny 2x upscaler (the weights shipped in nodes/upscale/weights/).

The model is spandrel's ESRGAN RRDBNet in the original ESRGAN key layout (`model.0.*`,
`model.1.sub.N.RDB1.conv1.0.*`, ...), so spandrel detects it as ESRGAN like any community .pth:
32 filters, 3 RRDB blocks (growth 32), one nearest+conv upsampling stage (x2), LeakyReLU.

Data: default-world pictures (training/default_world) drawn at two sizes from the same scenes,
the high-resolution truth at 2s and the low-resolution input at s (s from 32 to 128, so the model
sees shapes at many pixel scales); half of the inputs are drawn directly at s, half are the 2x2
area average of the truth (the two are close: the renderer's edge coverage is a box-like filter).
A third of the inputs get a light degradation (Gaussian blur sigma <= 0.6, noise sigma <= 0.015),
so pictures that went through a VAE (txt2img outputs) upscale cleanly too. Large pictures are
cropped, preferring crops that contain the shape's outline (flat background teaches nothing).
Loss: Charbonnier (smooth L1) on pixels; Adam, cosine learning rate over max(step/steps,
seconds/budget), so a slower GPU ends on schedule rather than being cut off mid-way.

Evaluation on held-out scenes, with the weights rounded to fp16 as shipped: PSNR of the model,
of bicubic (torch, half-pixel centres, clamped) and of bilinear against the truth, at 64->128 and
128->256, for inputs drawn at the low size and for area-downscaled inputs; on CUDA also with the
model computed in bf16 (what ImageUpscaleWithModel does there).

    python training/train_upscaler.py --device cuda --out $OUT/upscale      # 155 s (2577 steps) on one H100
    python training/train_upscaler.py --smoke --out /tmp/upscale_smoke       # CPU plumbing check, ~30 s
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCALE = 2
NUM_FILTERS = 32
NUM_BLOCKS = 3
FILE_NAME = "2x-nodegraph-world-esrgan.safetensors"
LR_SIZES = (32, 48, 64, 96, 128)  # low-resolution sizes drawn; the truth is drawn at twice that
PATCH = 48  # low-resolution crop side for pictures larger than this
EVAL_SEED = 10**6  # scenes never used in training (training seeds are below this)


def load_module(name: str, path: Path):
    """Import a file on its own (the upscale pack's __init__ registers all its nodes): only what this script needs."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


import training.default_world as world  # noqa: E402

spandrel = load_module("nodegraph_spandrel_import", ROOT / "nodes" / "upscale" / "spandrel_import.py").import_spandrel()
from spandrel.architectures.ESRGAN import ESRGAN  # noqa: E402  (spandrel's RRDBNet)


def build_model() -> torch.nn.Module:
    return ESRGAN(in_nc=3, out_nc=3, num_filters=NUM_FILTERS, num_blocks=NUM_BLOCKS, scale=SCALE)


@torch.no_grad()
def init_near_bilinear(model: torch.nn.Module) -> None:
    """Start from bilinear upscaling instead of noise (a training shortcut; the file stays plain ESRGAN).

    Feature channels 0-2 carry the RGB input through the network: identity kernels in the first
    conv, hr_conv0 and hr_conv1, a zeroed trunk conv on those channels (the trunk's shortcut then
    passes them unchanged), and the upsampling conv smooths the nearest-neighbour x2 with
    [1/4, 1/2, 1/4] on each axis, which is exactly bilinear (half-pixel) x2 away from the border.
    The other channels keep their random start (RDB convs scaled by 0.1, as ESRGAN initialises)
    and learn the correction; the last conv reads them from zero.
    """
    seq = model.model
    first, trunk_conv, up_conv, hr_conv0, hr_conv1 = seq[0], seq[1].sub[-1], seq[3], seq[5], seq[7]
    for name, p in seq[1].named_parameters():
        if ".RDB" in f".{name}" and name.endswith("weight"):
            p.mul_(0.1)

    def carry(conv: torch.nn.Conv2d, kernel: torch.Tensor, zero_rest: bool) -> None:
        conv.weight[:3] = 0 if zero_rest else conv.weight[:3]
        conv.weight[:3, :3] = 0
        for c in range(3):
            conv.weight[c, c] = kernel
        conv.bias[:3] = 0

    identity = torch.zeros(3, 3)
    identity[1, 1] = 1
    smooth = torch.tensor([0.25, 0.5, 0.25])
    carry(first, identity, zero_rest=True)
    trunk_conv.weight[:3] = 0
    trunk_conv.bias[:3] = 0
    carry(up_conv, smooth[:, None] * smooth[None, :], zero_rest=True)
    carry(hr_conv0, identity, zero_rest=True)
    hr_conv1.weight.zero_()
    hr_conv1.bias.zero_()
    for c in range(3):
        hr_conv1.weight[c, c] = identity


# --- data ---------------------------------------------------------------------------------------------
def draw_pair(seed: int, count: int, lr_size: int, device, area_fraction: float = 0.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(low-res input, high-res truth, truth outline) for `count` scenes: [B,3,s,s], [B,3,2s,2s], [B,1,2s,2s]."""
    scenes = world.sample_scenes(seed, count)
    hr, masks = world.render(scenes, size=lr_size * SCALE, device=device)
    drawn, _ = world.render(scenes, size=lr_size, device=device)
    area = F.avg_pool2d(hr, SCALE)
    pick = (torch.arange(count, device=device) < round(count * area_fraction)).view(-1, 1, 1, 1)
    return torch.where(pick, area, drawn), hr, world.mask_edges(masks)


def degrade(lr: torch.Tensor, generator: torch.Generator, fraction: float = 1 / 3) -> torch.Tensor:
    """Light blur and noise on a random `fraction` of the batch (the rest stays clean)."""
    b = lr.shape[0]
    dev = lr.device
    chosen = torch.rand(b, generator=generator, device=dev) < fraction
    if not chosen.any():
        return lr
    out = lr.clone()
    sigma = torch.rand(b, generator=generator, device=dev) * 0.6 + 1e-3
    taps = torch.arange(-2, 3, device=dev, dtype=lr.dtype)
    kernel = torch.exp(-(taps.view(1, -1) ** 2) / (2 * sigma.view(-1, 1) ** 2))
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # [B, 5], separable
    c, h, w = lr.shape[1:]
    x = F.pad(lr, (2, 2, 2, 2), mode="replicate").reshape(1, b * c, h + 4, w + 4)
    kx = kernel.repeat_interleave(c, dim=0).view(b * c, 1, 1, 5)
    ky = kernel.repeat_interleave(c, dim=0).view(b * c, 1, 5, 1)
    blurred = F.conv2d(F.conv2d(x, kx, groups=b * c), ky, groups=b * c).view(b, c, h, w)
    noise = torch.randn(lr.shape, generator=generator, device=dev) * (torch.rand(b, 1, 1, 1, generator=generator, device=dev) * 0.015)
    out[chosen] = (blurred + noise)[chosen].clamp(0, 1)
    return out


def crop_pairs(lr: torch.Tensor, hr: torch.Tensor, edges: torch.Tensor, patch: int,
               generator: torch.Generator, edge_bias: float = 0.75) -> tuple[torch.Tensor, torch.Tensor]:
    """Aligned crops (patch at low res, SCALE*patch at high res), centred on the outline most of the time."""
    s = lr.shape[-1]
    if s <= patch:
        return lr, hr
    lr_crops, hr_crops = [], []
    for k in range(lr.shape[0]):
        outline = edges[k, 0] > 0.2
        if torch.rand(1, generator=generator).item() < edge_bias and outline.any():
            ys, xs = outline.nonzero(as_tuple=True)
            j = int(torch.randint(len(ys), (1,), generator=generator))
            cy, cx = int(ys[j]) // SCALE, int(xs[j]) // SCALE
            y0 = min(max(cy - patch // 2, 0), s - patch)
            x0 = min(max(cx - patch // 2, 0), s - patch)
        else:
            y0, x0 = (int(v) for v in torch.randint(s - patch + 1, (2,), generator=generator))
        lr_crops.append(lr[k, :, y0:y0 + patch, x0:x0 + patch])
        hr_crops.append(hr[k, :, SCALE * y0:SCALE * (y0 + patch), SCALE * x0:SCALE * (x0 + patch)])
    return torch.stack(lr_crops), torch.stack(hr_crops)


def training_batch(step: int, args, device, generators: tuple[torch.Generator, torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
    """One step's (low-res, truth) pairs; generators: (on the device for noise, on the CPU for crops)."""
    sizes = [s for s in LR_SIZES if s <= args.max_lr_size]
    s = sizes[step % len(sizes)]
    # the same number of low-res pixels per step whatever the size: small pictures come in bigger batches
    count = max(1, round(args.batch * (PATCH * PATCH) / (min(s, PATCH) ** 2)))
    lr, hr, edges = draw_pair(args.seed * 10**5 + step, count, s, device)
    lr = degrade(lr, generators[0])
    return crop_pairs(lr, hr, edges, PATCH, generators[1])


# --- training -----------------------------------------------------------------------------------------
def charbonnier(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((x - y) ** 2 + eps * eps).mean()


def train(args, device) -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(args.seed)
    model = build_model()
    init_near_bilinear(model)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99))
    generators = (torch.Generator(device=device).manual_seed(args.seed), torch.Generator().manual_seed(args.seed + 1))
    use_bf16 = args.bf16 and device.type == "cuda"  # off by default: bf16 caps the precision near bicubic's PSNR
    start = time.time()
    log = []
    step = 0
    while True:
        progress = max(step / args.steps, (time.time() - start) / args.seconds)
        if progress >= 1:
            break
        for group in optimizer.param_groups:  # short warm-up, then cosine to 2% of the peak
            group["lr"] = args.lr * min(1.0, (step + 1) / 200) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))
        lr_img, hr_img = training_batch(step, args, device, generators)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            out = model(lr_img)
        loss = charbonnier(out.float(), hr_img)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % args.log_every == 0:
            entry = {"step": step, "seconds": round(time.time() - start, 1), "loss": round(loss.item(), 5),
                     "lr": round(optimizer.param_groups[0]["lr"], 7)}
            log.append(entry)
            print(json.dumps(entry), flush=True)
        step += 1
    seconds = time.time() - start
    info = {"steps": step, "seconds": round(seconds, 1), "stopped_by": "steps" if step >= args.steps else "time budget",
            "batch_low_res_pixels": args.batch * PATCH * PATCH, "patch": PATCH, "lr_sizes": [s for s in LR_SIZES if s <= args.max_lr_size],
            "peak_lr": args.lr, "loss": "charbonnier", "log": log[-5:]}
    return model.eval(), info


# --- evaluation ---------------------------------------------------------------------------------------
def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of images in 0..1."""
    mse = ((x - y) ** 2).flatten(1).mean(1).clamp(min=1e-10)
    return 10 * torch.log10(1 / mse)


@torch.no_grad()
def upscale(model: torch.nn.Module, lr: torch.Tensor, chunk: int = 32, dtype=torch.float32) -> torch.Tensor:
    return torch.cat([model(lr[k:k + chunk].to(dtype)).float().clamp(0, 1) for k in range(0, lr.shape[0], chunk)])


@torch.no_grad()
def evaluate(model: torch.nn.Module, device, count: int, sizes=(64, 128), dtype=torch.float32) -> dict:
    results = {}
    for s in sizes:
        for source, area_fraction in (("drawn", 0.0), ("area", 1.0)):
            lr, hr, _ = draw_pair(EVAL_SEED + s, count, s, device, area_fraction=area_fraction)
            ours = upscale(model, lr, dtype=dtype)
            bicubic = F.interpolate(lr, scale_factor=SCALE, mode="bicubic", align_corners=False).clamp(0, 1)
            bilinear = F.interpolate(lr, scale_factor=SCALE, mode="bilinear", align_corners=False)
            key = f"{s}to{s * SCALE}_{source}"
            results[key] = {"model_psnr": round(psnr(ours, hr).mean().item(), 2),
                            "bicubic_psnr": round(psnr(bicubic, hr).mean().item(), 2),
                            "bilinear_psnr": round(psnr(bilinear, hr).mean().item(), 2),
                            "model_beats_bicubic_fraction": round((psnr(ours, hr) > psnr(bicubic, hr)).float().mean().item(), 3)}
    return results


def save(model: torch.nn.Module, path: Path, meta: dict) -> int:
    from safetensors.torch import save_file

    tensors = {k: v.detach().to(torch.float16).contiguous().cpu() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()})
    return path.stat().st_size


def check_spandrel_detects(path: Path) -> dict:
    """Load the exported file back through spandrel's detection, as UpscaleModelLoader does."""
    from safetensors.torch import load_file

    descriptor = spandrel.ModelLoader().load_from_state_dict(load_file(str(path)))
    return {"architecture": descriptor.architecture.name, "scale": descriptor.scale, "tags": descriptor.tags}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=str(ROOT / "nodes" / "upscale" / "weights"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=64, help="48x48 low-res crops per step (more for small sizes)")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--seconds", type=float, default=150, help="training time budget (cosine schedule over it)")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--max-lr-size", type=int, default=max(LR_SIZES))
    parser.add_argument("--eval-count", type=int, default=256)
    parser.add_argument("--log-every", type=int, default=250)
    parser.add_argument("--bf16", action="store_true", help="train under bf16 autocast (default fp32 with TF32 convs)")
    parser.add_argument("--smoke", action="store_true", help="a few CPU steps on small batches (plumbing check)")
    args = parser.parse_args()
    if args.smoke:
        args.batch, args.steps, args.seconds, args.eval_count, args.log_every, args.max_lr_size = 4, 12, 60, 8, 4, 64
    torch.set_num_threads(1 if args.device == "cpu" else 4)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    device = torch.device(args.device)
    wall = time.time()

    model, info = train(args, device)
    with torch.no_grad():  # evaluate exactly what ships: weights rounded to fp16, computed in fp32
        for p in model.parameters():
            p.copy_(p.half().float())
    sizes = (64,) if args.smoke else (64, 128)
    metrics = evaluate(model, device, args.eval_count, sizes=sizes)
    print("psnr:", json.dumps(metrics), flush=True)
    if device.type == "cuda":  # what ImageUpscaleWithModel computes on a GPU (the device manager's dtype)
        metrics_bf16 = evaluate(copy.deepcopy(model).to(torch.bfloat16), device, args.eval_count, sizes=sizes,
                                dtype=torch.bfloat16)
        print("psnr (bf16 compute):", json.dumps(metrics_bf16), flush=True)
        info["psnr_bf16_compute"] = {k: v["model_psnr"] for k, v in metrics_bf16.items()}

    out = Path(args.out)
    path = out / FILE_NAME
    params = sum(p.numel() for p in model.parameters())
    meta = {
        "nodegraph.trained_by": "training/train_upscaler.py" + (" --smoke" if args.smoke else ""),
        "nodegraph.dataset": "training/default_world, drawn at s and 2s (s in " + ", ".join(map(str, info["lr_sizes"])) + ")",
        "nodegraph.architecture": f"ESRGAN RRDBNet, old key layout, {NUM_FILTERS} filters, {NUM_BLOCKS} blocks, growth 32, x{SCALE}",
        "nodegraph.scale": str(SCALE),
        "nodegraph.training": {k: v for k, v in info.items() if k != "log"} | {"seed": args.seed},
        "nodegraph.psnr": metrics,
    }
    size = save(model, path, meta)
    detected = check_spandrel_detects(path)
    report = {"file": FILE_NAME, "file_bytes": size, "parameters": params, "spandrel": detected,
              "training": info, "psnr": metrics, "device": str(device),
              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "wall_seconds": round(time.time() - wall, 1)}
    (out / "upscaler_metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "training"} | {"steps": info["steps"]}, indent=1))


if __name__ == "__main__":
    main()
