"""Train the shipped example LoRA: a "silhouette" style for the embedded default model (see training/LORA.md).

The default model draws the prompted colours ("a red circle on a blue background"). This LoRA makes it
draw every picture as a black silhouette on a white background, whatever the colour words say, while
keeping the shape, its size and place from the prompt. It is trained on default-world scenes
re-rendered in that style, with their usual captions, so the effect is easy to measure: read the
picture back with default_world.read_image and the colours are (black, white) instead of the prompt's.
(The default VAE only knows the world's flat palette colours, so a style has to live in that palette:
sepia tones, outlines or gradients come back as mush.)

LoRA layout: kohya's LoCon set at rank --rank. U-Net: every Linear/Conv2d inside Transformer2DModel,
ResnetBlock2D, Downsample2D and Upsample2D (attention q/k/v/out, feed-forward, proj_in/out, resnet
convs 3x3, shortcuts, time projections, down/up-sampling convs); text encoder: every Linear inside
CLIPAttention and CLIPMLP. Exported in kohya format (lora_unet_* / lora_te_*, lora_down / lora_up /
alpha, fp16) with kohya-style and nodegraph metadata; the export is read back through
nodes/diffusion/lora.py and checked against the trained network (zero unmatched keys, same output).

GPU:   python3 training/train_lora.py --out $OUT/lora
CPU smoke test (about a minute): python training/train_lora.py --smoke --out /tmp/lora-smoke
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
from training.default_world import COLORS, SHAPES, make_caption, read_image, render, sample_scenes, token_ids  # noqa: E402
from train_default import alphas_cumprod, cosine_lr, ddim_sample, eps_step, log, prepare_tokens, save_grid  # noqa: E402

CHECKPOINT = ROOT / "nodes/diffusion/weights/nodegraph-default.safetensors"
FILE_NAME = "nodegraph-silhouette.safetensors"
IMAGE_SIZE = 128
TRAIN_TIMESTEPS = 1000
INK = torch.tensor(COLORS["black"])
PAPER = torch.tensor(COLORS["white"])
UNET_BLOCKS = {"Transformer2DModel", "ResnetBlock2D", "Downsample2D", "Upsample2D"}
TEXT_BLOCKS = {"CLIPAttention", "CLIPMLP"}


# ------------------------------------------------------------------------------------- the style

def silhouette_images(seed: int, count: int, device) -> tuple[torch.Tensor, list[str]]:
    """Default-world scenes drawn as a black shape on white paper (same shapes, sizes and places),
    in -1..1 for the VAE, with the scenes' usual captions (which still name the original colours)."""
    scenes = sample_scenes(seed, count)
    _, masks = render(scenes, size=IMAGE_SIZE, device=device)
    ink, paper = INK.to(device).view(1, 3, 1, 1), PAPER.to(device).view(1, 3, 1, 1)
    images = paper + (ink - paper) * masks
    return images * 2 - 1, scenes.captions


# ------------------------------------------------------------------------------------- LoRA layers

class LoraLayer(torch.nn.Module):
    """base(x) + multiplier * scale * up(down(x)); down is a copy of the base layer's geometry at rank r
    (a k x k conv for a conv layer: LoCon), up a 1x1 conv / linear. up starts at zero."""

    def __init__(self, base: torch.nn.Module, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.rank, self.alpha, self.scale, self.multiplier = rank, alpha, alpha / rank, 1.0
        if isinstance(base, torch.nn.Linear):
            self.down = torch.nn.Linear(base.in_features, rank, bias=False)
            self.up = torch.nn.Linear(rank, base.out_features, bias=False)
        else:
            self.down = torch.nn.Conv2d(base.in_channels, rank, base.kernel_size, base.stride, base.padding,
                                        base.dilation, bias=False)
            self.up = torch.nn.Conv2d(rank, base.out_channels, 1, bias=False)
        torch.nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        torch.nn.init.zeros_(self.up.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.multiplier == 0:
            return out
        return out + self.up(self.down(x)) * (self.scale * self.multiplier)


def inject(root: torch.nn.Module, blocks: set[str], rank: int, alpha: float) -> dict[str, LoraLayer]:
    """Wrap every Linear/Conv2d inside modules of the given class names; returns {module path: layer}."""
    found = []
    for name, module in root.named_modules():
        if type(module).__name__ in blocks:
            for sub, m in module.named_modules():
                if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) and sub:
                    found.append(f"{name}.{sub}" if name else sub)
    layers = {}
    for path in dict.fromkeys(found):
        parent_path, _, child = path.rpartition(".")
        parent = root.get_submodule(parent_path) if parent_path else root
        layer = LoraLayer(getattr(parent, child), rank, alpha).to(next(root.parameters()).device)
        setattr(parent, child, layer)
        layers[path] = layer
    return layers


def set_multiplier(layers: dict[str, LoraLayer], value: float) -> None:
    for layer in layers.values():
        layer.multiplier = value


def kohya_tensors(unet_layers: dict[str, LoraLayer], text_layers: dict[str, LoraLayer],
                  text_core_path: str) -> dict[str, torch.Tensor]:
    """kohya names: lora_unet_<diffusers path with '_'>, lora_te_text_model_<...> (as sd-scripts writes SD1)."""
    out = {}
    for prefix, layers in (("lora_unet_", unet_layers), ("lora_te_", text_layers)):
        for path, layer in layers.items():
            if prefix == "lora_te_":  # kohya names the CLIPTextModel's inner text_model
                path = "text_model." + path.removeprefix(text_core_path + ".") if text_core_path else "text_model." + path
            key = prefix + path.replace(".", "_")
            out[f"{key}.lora_down.weight"] = layer.down.weight.detach().half().cpu().contiguous()
            out[f"{key}.lora_up.weight"] = layer.up.weight.detach().half().cpu().contiguous()
            out[f"{key}.alpha"] = torch.tensor(float(layer.alpha), dtype=torch.float16)
    return out


# ------------------------------------------------------------------------------------- training

@torch.no_grad()
def build_pool(vae, scale_images: int, seed: int, device, chunk: int):
    means, stds, tokens = [], [], []
    for c in range(math.ceil(scale_images / chunk)):
        x, captions = silhouette_images(seed * 7919 + 5_000_000 + c, chunk, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            posterior = vae.encode(x).latent_dist
        means.append(posterior.mean.float())
        stds.append(posterior.std.float())
        tokens.append(torch.tensor([token_ids(t) for t in captions], dtype=torch.long))
    return torch.cat(means)[:scale_images], torch.cat(stds)[:scale_images], torch.cat(tokens)[:scale_images].to(device)


def train(unet, text_encoder, params, pool, scale: float, args, device, logfile) -> dict:
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    acp = alphas_cumprod().to(device)
    snr = acp / (1 - acp)
    generator = torch.Generator(device=device).manual_seed(args.seed + 1)
    means, stds, tokens = pool
    t0 = time.time()
    stats: dict = {}
    for step in range(args.steps):
        if args.stop_at is not None and step >= args.stop_at:
            log(f"stopping at step {step} (--stop-at)", logfile)
            stats["stopped_at"] = step
            break
        if args.deadline and time.time() - args.t_start > args.deadline:
            log(f"stopping at step {step}: the {args.deadline}s deadline of the run was reached", logfile)
            stats["stopped_at"] = step
            break
        for group in opt.param_groups:
            group["lr"] = args.lr * cosine_lr(step, args.steps, warmup=min(100, args.steps))
        idx = torch.randint(0, means.shape[0], (args.batch,), generator=generator, device=device)
        latents = (means[idx] + stds[idx] * torch.randn(means[idx].shape, generator=generator, device=device)) * scale
        ids = prepare_tokens(tokens[idx], generator, args.caption_dropout)
        noise = torch.randn(latents.shape, generator=generator, device=device)
        t = torch.randint(0, TRAIN_TIMESTEPS, (args.batch,), generator=generator, device=device)
        loss, per_sample, grad_norm = eps_step(  # min-SNR-5, as the base model was trained
            opt, params, lambda noisy, t: unet(noisy, t, text_encoder(ids).last_hidden_state).sample,
            latents, noise, t, acp, snr)
        if step % max(1, args.steps // 20) == 0 or step == args.steps - 1:
            stats.update(step=step, loss=loss.item(), mse=per_sample.mean().item(), grad_norm=grad_norm.item())
            log(f"lora {step:5d} loss {loss.item():.4f} mse {per_sample.mean().item():.4f} "
                f"gn {grad_norm.item():.3f} ({time.time() - t0:.0f}s)", logfile)
    stats["seconds"] = time.time() - t0
    return stats


# ------------------------------------------------------------------------------------- evaluation

def evaluation_prompts(seed: int, count: int) -> list[tuple[str, str, str]]:
    """(prompt, shape colour, background colour) with neither colour black nor white, so the base model's
    answer and the style's (black on white) are told apart."""
    rng = np.random.default_rng(seed)
    colours = [c for c in COLORS if c not in ("black", "white")]
    out = []
    for i in range(count):
        fg = colours[i % len(colours)]
        bg = colours[(i + 1 + int(rng.integers(len(colours) - 1))) % len(colours)]
        if bg == fg:
            bg = colours[(colours.index(fg) + 1) % len(colours)]
        out.append((make_caption(SHAPES[int(rng.integers(len(SHAPES)))], fg, bg, None, None), fg, bg))
    return out


@torch.no_grad()
def evaluate(unet, text_encoder, vae, layers, scale, args, device, out: Path, logfile) -> dict:
    prompts = evaluation_prompts(args.seed + 99, args.eval_prompts)
    texts = [p[0] for p in prompts]
    results = {}
    grids = []
    for name, multiplier in (("base", 0.0), ("lora", 1.0)):
        set_multiplier(layers, multiplier)
        images = ddim_sample(unet, text_encoder, vae, texts, scale, steps=args.eval_steps, cfg=args.cfg,
                             seed=args.seed, device=device)
        readings = [read_image(img) for img in images]
        results[name] = dict(
            silhouette=float(np.mean([(r.shape_color, r.background) == ("black", "white") for r in readings])),
            prompt_colours=float(np.mean([(r.shape_color, r.background) == (p[1], p[2])
                                          for r, p in zip(readings, prompts)])),
            shape_fraction=float(np.mean([r.shape_fraction for r in readings])),
        )
        grids.append(images[:8].cpu())
    set_multiplier(layers, 1.0)
    log(f"eval (DDIM {args.eval_steps} steps, cfg {args.cfg}, {len(prompts)} prompts): {json.dumps(results)}", logfile)
    save_grid(torch.cat(grids), out / "lora_samples.png", columns=8)
    (out / "lora_samples.txt").write_text("row 1: base model, row 2: with the LoRA\n" + "\n".join(texts[:8]) + "\n")
    return results


@torch.no_grad()
def check_export(path: Path, unet, text_encoder, layers, device, logfile) -> dict:
    """Read the exported file back through the node pack's LoRA code: every key must map, and the
    patched base model must give the trained network's output."""
    from nodegraph.devices import DeviceManager
    from nodes.diffusion.checkpoint.single_file import load_checkpoint
    from nodes.diffusion.loader_nodes import handles_from_checkpoint
    from nodes.diffusion.lora import build_patches, read_lora

    model, clip, _ = handles_from_checkpoint(load_checkpoint(CHECKPOINT))
    lora = read_lora(path)
    patches = build_patches(lora, model=model.module, clip=clip.module)
    bad = patches.unmatched + patches.unsupported + patches.mismatched
    devices = DeviceManager(device=str(device), dtype=torch.float32)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 16, 16, generator=g).to(device)
    ids = torch.tensor([token_ids("a red circle on a blue background"), token_ids("")], device=device)
    t = torch.tensor([500.0, 100.0], device=device)
    set_multiplier(layers, 1.0)
    unet.float()
    text_encoder.float()
    want_ctx = text_encoder(ids).last_hidden_state
    want = unet(x, t, want_ctx).sample
    with devices.use(clip.add_patches(patches.clip)) as c:
        got_ctx = c.encoders[0](ids).last_hidden_state
    with devices.use(model.add_patches(patches.model)) as m:
        got = m.apply(x, t, want_ctx)
    result = dict(keys=len(lora.tensors), model_patches=len(patches.model), clip_patches=len(patches.clip),
                  unmatched=len(bad), context_max_diff=(got_ctx - want_ctx).abs().max().item(),
                  unet_max_diff=(got - want).abs().max().item(), unet_output_std=want.std().item())
    log(f"export check: {json.dumps(result)}", logfile)
    if bad:
        raise SystemExit(f"export check failed: unmatched keys {bad[:5]}")
    return result


# ------------------------------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=4.0, help="kohya alpha: the LoRA is scaled by alpha / rank")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--caption-dropout", type=float, default=0.1)
    ap.add_argument("--pool", type=int, default=32768, help="styled images encoded once by the VAE")
    ap.add_argument("--deadline", type=float, default=165, help="stop training once the run is this old (s)")
    ap.add_argument("--stop-at", type=int, default=None,
                    help="stop after this many steps (the lr schedule still spans --steps): reproduces a run the "
                         "deadline stopped, e.g. the shipped one: --stop-at 679")
    ap.add_argument("--cfg", type=float, default=5.0)
    ap.add_argument("--eval-prompts", type=int, default=64)
    ap.add_argument("--eval-steps", type=int, default=20)
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run that exercises every stage")
    args = ap.parse_args(argv)
    if args.smoke:
        args.steps, args.batch, args.pool, args.eval_prompts, args.eval_steps = 3, 4, 16, 4, 4
        torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    logfile = open(args.out / "lora_train_log.txt", "w")
    log(f"args: {json.dumps({k: str(v) for k, v in vars(args).items()})}", logfile)
    args.t_start = t_start = time.time()

    from nodes.diffusion.checkpoint.modules import clip_core
    from nodes.diffusion.checkpoint.single_file import load_checkpoint
    ckpt = load_checkpoint(CHECKPOINT)
    unet, vae, text_encoder = ckpt.unet.float().to(device), ckpt.vae.float().to(device), ckpt.text_encoders[0].float().to(device)
    scale = float(ckpt.vae_config["scaling_factor"])
    for m in (unet, vae, text_encoder):
        m.requires_grad_(False).eval()
    core = clip_core(text_encoder)
    core_path = next(name for name, m in text_encoder.named_modules() if m is core)
    unet_layers = inject(unet, UNET_BLOCKS, args.rank, args.alpha)
    text_layers = inject(text_encoder, TEXT_BLOCKS, args.rank, args.alpha)
    layers = {**{f"unet.{k}": v for k, v in unet_layers.items()}, **{f"te.{k}": v for k, v in text_layers.items()}}
    params = [p for layer in layers.values() for p in (layer.down.weight, layer.up.weight)]
    for p in params:
        p.requires_grad_(True)
    n_params = sum(p.numel() for p in params)
    log(f"LoRA rank {args.rank}, alpha {args.alpha}: {len(unet_layers)} U-Net + {len(text_layers)} text-encoder layers, "
        f"{n_params} parameters ({2 * n_params / 1e6:.2f} MB fp16); latent scale {scale:.5f}", logfile)

    t0 = time.time()
    pool = build_pool(vae, args.pool, args.seed, device, chunk=512 if device.type == "cuda" else 8)
    log(f"pool: {pool[0].shape[0]} silhouette images encoded in {time.time() - t0:.1f}s", logfile)
    stats = train(unet, text_encoder, params, pool, scale, args, device, logfile)
    del pool
    with torch.no_grad():  # evaluate what ships: the fp16-rounded factors
        for p in params:
            p.copy_(p.half().float())
    unet.eval()
    text_encoder.eval()
    metrics = evaluate(unet, text_encoder, vae, layers, scale, args, device, args.out, logfile)

    info = dict(style="silhouette: every picture a black shape on a white background, shape/size/place kept",
                data="default-world scenes re-rendered black on white, usual captions", base=CHECKPOINT.name,
                rank=args.rank, alpha=args.alpha, steps=args.steps, batch=args.batch, lr=args.lr,
                caption_dropout=args.caption_dropout, pool=args.pool, seed=args.seed, parameters=n_params,
                train=stats, eval=metrics,
                device=torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                script="training/train_lora.py")
    tensors = kohya_tensors(unet_layers, text_layers, core_path)
    metadata = {
        "ss_network_module": "networks.lora", "ss_network_dim": str(args.rank), "ss_network_alpha": str(args.alpha),
        "ss_network_args": json.dumps({"conv_dim": str(args.rank), "conv_alpha": str(args.alpha)}),
        "ss_base_model_version": "sd_v1", "ss_output_name": FILE_NAME.removesuffix(".safetensors"),
        "ss_steps": str(stats.get("stopped_at", args.steps)), "ss_learning_rate": str(args.lr),
        "ss_training_comment": info["style"], "nodegraph.training": json.dumps(info),
    }
    from nodes.diffusion.lora import save_lora
    path = save_lora(args.out / FILE_NAME, tensors, metadata)
    info["export"] = check_export(path, unet, text_encoder, layers, device, logfile)
    info["file_bytes"] = path.stat().st_size
    info["total_seconds"] = time.time() - t_start
    (args.out / "lora_metrics.json").write_text(json.dumps(info, indent=2))
    log(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB); done in {time.time() - t_start:.0f}s", logfile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
