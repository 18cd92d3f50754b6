"""SD1.5-size txt2img through the whole stack on a GPU: it/s and peak VRAM, plain, with a LoRA and
with one or two ControlNets.

    python bench/sd15_gpu.py [--steps 20] [--size 512] [--batches 1 4] [--lora-rank 32] [--controlnets 1 2]

Builds a full-size SD1.5 checkpoint with random weights in the original single-file layout (fp16,
written to a temporary folder, never committed), then runs the txt2img workflow through the
Executor: CheckpointLoaderSimple -> CLIPTextEncode x2 -> EmptyLatentImage -> KSampler (CFG,
euler, normal) -> VAEDecode -> PreviewImage. Sampler speed comes from the KSampler's progress
events; peak VRAM from torch.cuda.max_memory_allocated over the run. Prints a table.

LoRA rows: a kohya-format LoRA (random, the given rank) on every attention projection, feed-forward,
resnet conv and proj layer of the U-Net and every text-encoder linear, through LoraLoader; "patch ms"
is the time to put the patched weights in place on the GPU (the first use of the patched handle) and
"restore ms" the time to go back to the base weights. ControlNet rows: full-size SD1.5 ControlNets
(random, diffusers layout, 3-channel hint) through ControlNetLoader + ControlNetApplyAdvanced, stacked.
"""
from __future__ import annotations

import argparse
import inspect
import tempfile
import time
from pathlib import Path

import torch

from nodegraph.environment import Environment
from nodegraph.executor import Executor
from nodegraph.folders import Folders
from nodegraph.registry import default_registry
from nodes.diffusion.checkpoint.layout import reference_config
from nodes.diffusion.checkpoint.modules import build_clip, build_unet, build_vae
from nodes.diffusion.checkpoint.writer import save_single_file


def build_sd15(path: Path) -> None:
    build_random_checkpoint(path, "sd1")


def _materialise(models, device) -> None:
    for model in models:
        model.to_empty(device=device)
        for module in model.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        for name, buffer in model.named_buffers():  # e.g. CLIP's position ids
            if "position_ids" in name:
                buffer.copy_(torch.arange(buffer.shape[-1], device=device).expand_as(buffer))


def build_random_checkpoint(path: Path, family: str = "sd1") -> None:
    """A full-size checkpoint with random weights in the original single-file layout, fp16: "sd1" (SD1.5)
    or "sdxl" (SDXL base: both text encoders)."""
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    prefix = "sd15" if family == "sd1" else "sdxl"
    unet = build_unet(reference_config(f"{prefix}_unet"))  # built on the meta device:
    vae = build_vae(reference_config(f"{prefix}_vae"))     # materialise with default inits
    clips = [build_clip(reference_config(f"{prefix}_text_encoder"))]
    if family == "sdxl":
        clips.append(build_clip(reference_config("sdxl_text_encoder_2"), with_projection=True))
    _materialise([unet, vae, *clips], device)
    save_single_file(path, unet=unet, vae=vae, text_encoder=clips[0],
                     text_encoder_2=clips[1] if len(clips) > 1 else None, family=family, dtype=torch.float16)


def build_lora(path: Path, rank: int) -> int:
    """A kohya-format LoRA for SD1.5 with random weights on every layer kohya's LoCon trains."""
    from safetensors.torch import save_file
    tensors = {}
    parts = (("lora_unet_", build_unet(reference_config("sd15_unet"))),
             ("lora_te_", build_clip(reference_config("sd15_text_encoder"))))
    for prefix, model in parts:
        for name, module in model.named_modules():
            if prefix == "lora_te_" and "encoder.layers" not in name:
                continue  # kohya trains the text encoder's transformer layers only
            if isinstance(module, torch.nn.Linear) and ("attn" in name or "ff." in name or "mlp" in name
                                                        or "proj" in name or prefix == "lora_te_"):
                down, up = (rank, module.in_features), (module.out_features, rank)
            elif isinstance(module, torch.nn.Conv2d) and ("resnets" in name or "proj" in name):
                down = (rank, module.in_channels, *module.kernel_size)
                up = (module.out_channels, rank, 1, 1)
            else:
                continue
            key = prefix + name.replace(".", "_")
            tensors[f"{key}.lora_down.weight"] = torch.randn(down, dtype=torch.float16) * 0.01
            tensors[f"{key}.lora_up.weight"] = torch.randn(up, dtype=torch.float16) * 0.01
            tensors[f"{key}.alpha"] = torch.tensor(float(rank))
    save_file(tensors, str(path))
    return sum(1 for k in tensors if k.endswith(".alpha"))


def build_controlnet(path: Path, layout: str = "diffusers") -> None:
    """A full-size SD1.5 ControlNet (random, the zero convs too) as a single .safetensors file, in the
    diffusers layout or the original (cldm, "control_model.") one that ComfyUI also loads."""
    from diffusers import ControlNetModel
    from safetensors.torch import save_file

    from nodes.diffusion.controlnet_files import save_controlnet
    accepted = inspect.signature(ControlNetModel.__init__).parameters
    torch.manual_seed(1)
    net = ControlNetModel(**{k: v for k, v in reference_config("sd15_unet").items() if k in accepted})
    if layout == "original":
        with torch.no_grad():  # zero convs at zero would make the residuals zero
            for name, p in net.named_parameters():
                if name.startswith(("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding.conv_out")):
                    p.normal_(0, 0.02)
        save_controlnet(path, net, dtype=torch.float16)
        return
    save_file({k: v.to(torch.float16).contiguous() for k, v in net.state_dict().items()}, str(path))


def workflow(size: int, batch: int, steps: int, seed: int, lora: float | None = None, controlnets: int = 0) -> dict:
    def link(node, out):
        return {"node": node, "output": out}
    model, clip = link("4", "MODEL"), link("4", "CLIP")
    nodes = {"4": {"type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15-random.safetensors"}}}
    if lora is not None:
        nodes["10"] = {"type": "LoraLoader", "inputs": {"model": model, "clip": clip, "lora_name": "bench.safetensors",
                                                        "strength_model": lora, "strength_clip": lora}}
        model, clip = link("10", "MODEL"), link("10", "CLIP")
    nodes.update({
        "6": {"type": "CLIPTextEncode", "inputs": {"text": "a photo of a cat", "clip": clip}},
        "7": {"type": "CLIPTextEncode", "inputs": {"text": "", "clip": clip}},
        "5": {"type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": batch}}})
    positive, negative = link("6", "CONDITIONING"), link("7", "CONDITIONING")
    if controlnets:
        nodes["20"] = {"type": "EmptyImage", "inputs": {"width": size, "height": size, "batch_size": 1,
                                                        "color": 0xFFFFFF}}
    for k in range(controlnets):
        loader, apply = str(21 + 2 * k), str(22 + 2 * k)
        nodes[loader] = {"type": "ControlNetLoader", "inputs": {"control_net_name": f"cn{k}.safetensors"}}
        nodes[apply] = {"type": "ControlNetApplyAdvanced", "inputs": {
            "positive": positive, "negative": negative, "control_net": link(loader, "CONTROL_NET"),
            "image": link("20", "IMAGE"), "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}}
        positive, negative = link(apply, 0), link(apply, 1)
    nodes.update({
        "3": {"type": "KSampler", "inputs": {"model": model, "seed": seed, "steps": steps, "cfg": 7.0,
                                             "sampler_name": "euler", "scheduler": "normal",
                                             "positive": positive, "negative": negative,
                                             "latent_image": link("5", "LATENT"), "denoise": 1.0}},
        "8": {"type": "VAEDecode", "inputs": {"samples": link("3", "LATENT"), "vae": link("4", "VAE")}},
        "9": {"type": "PreviewImage", "inputs": {"images": link("8", "IMAGE")}}})
    return {"version": 1, "nodes": nodes}


def timed_run(executor: Executor, doc: dict) -> tuple[float, float, float, object]:
    """(sampler it/s, workflow seconds, peak VRAM GiB, result) of one run."""
    stamps: list[float] = []
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = executor.run(doc, on_event=lambda name, data: stamps.append(time.perf_counter())
                          if name == "progress" and data["node"] == "3" else None)
    total = time.perf_counter() - started
    assert result.status == "success", result.errors
    assert torch.isfinite(result.value("8")).all()
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]), total, peak, result


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def patch_times(env: Environment, result, reps: int = 3) -> tuple[float, float]:
    """Median ms to apply the LoRA handle's patches on the GPU, and to restore the base weights."""
    patched, base = result.value("10", 0), result.value("4", 0)
    applies, restores = [], []
    for _ in range(reps):
        with env.devices.use(base):
            pass
        sync()
        t = time.perf_counter()
        with env.devices.use(patched):
            sync()
        applies.append(time.perf_counter() - t)
        t = time.perf_counter()
        with env.devices.use(base):
            sync()
        restores.append(time.perf_counter() - t)
    return sorted(applies)[reps // 2] * 1e3, sorted(restores)[reps // 2] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--lora-rank", type=int, default=32, help="0: no LoRA rows")
    parser.add_argument("--controlnets", type=int, nargs="*", default=[1, 2], help="ControlNet counts to time")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sd15-bench-"))
    for kind in ("checkpoints", "loras", "controlnet"):
        (work / "models" / kind).mkdir(parents=True)
    t0 = time.perf_counter()
    build_sd15(work / "models" / "checkpoints" / "sd15-random.safetensors")
    build_s = time.perf_counter() - t0
    env = Environment(registry=default_registry(plugins_dir=None), folders=Folders(work))
    executor = Executor(env)
    rows = []  # (what, batch, run, it/s, workflow s, peak GiB)
    for k, batch in enumerate(args.batches):
        for repeat in range(2):  # the first run of each batch size includes loading and warm-up
            its, total, peak, _ = timed_run(executor, workflow(args.size, batch, args.steps, seed=100 * k + repeat))
            rows.append(("base", batch, "cold" if repeat == 0 else "warm", its, total, peak))
    extra = []
    if args.lora_rank:
        layers = build_lora(work / "models" / "loras" / "bench.safetensors", args.lora_rank)
        for repeat in range(2):
            its, total, peak, result = timed_run(executor, workflow(args.size, 1, args.steps, seed=7 + repeat, lora=1.0))
            rows.append((f"LoRA r{args.lora_rank}", 1, "cold" if repeat == 0 else "warm", its, total, peak))
        apply_ms, restore_ms = patch_times(env, result)
        extra.append(f"LoRA rank {args.lora_rank} on {layers} layers (U-Net + text encoder): patch {apply_ms:.0f} ms, "
                     f"restore {restore_ms:.0f} ms on the GPU (median of 3)")
    for count in args.controlnets:
        for k in range(count):
            path = work / "models" / "controlnet" / f"cn{k}.safetensors"
            if not path.exists():
                build_controlnet(path)
        for repeat in range(2):
            its, total, peak, _ = timed_run(executor, workflow(args.size, 1, args.steps, seed=11 + repeat,
                                                               controlnets=count))
            rows.append((f"{count} ControlNet{'s' if count > 1 else ''}", 1, "cold" if repeat == 0 else "warm",
                         its, total, peak))
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"SD1.5 random weights, {args.size}x{args.size}, {args.steps} steps euler, CFG 7, {env.devices.dtype}, "
          f"{device}, torch {torch.__version__} (checkpoint built in {build_s:.1f} s)")
    print(f"{'what':>14} {'batch':>5} {'run':>5} {'it/s':>8} {'images/s':>9} {'workflow s':>11} {'peak VRAM GiB':>14}")
    for what, batch, kind, its, total, peak in rows:
        print(f"{what:>14} {batch:5d} {kind:>5} {its:8.2f} {its * batch / args.steps:9.2f} {total:11.2f} {peak:14.2f}")
    for line in extra:
        print(line)


if __name__ == "__main__":
    main()
