"""SD1.5-size txt2img through the whole stack on a GPU: it/s and peak VRAM.

    python bench/sd15_gpu.py [--steps 20] [--size 512] [--batches 1 4]

Builds a full-size SD1.5 checkpoint with random weights in the original single-file layout (fp16,
written to a temporary folder, never committed), then runs the txt2img workflow through the
Executor: CheckpointLoaderSimple -> CLIPTextEncode x2 -> EmptyLatentImage -> KSampler (CFG,
euler, normal) -> VAEDecode -> PreviewImage. Sampler speed comes from the KSampler's progress
events; peak VRAM from torch.cuda.max_memory_allocated over the run. Prints a table.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from nodegraph.environment import Environment
from nodegraph.executor import Executor
from nodegraph.folders import Folders
from nodegraph.registry import default_registry
from nodes.diffusion import checkpoint as ckpt


def build_sd15(path: Path) -> None:
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    unet = ckpt.build_unet(ckpt.reference_config("sd15_unet"))  # built on the meta device:
    vae = ckpt.build_vae(ckpt.reference_config("sd15_vae"))     # materialise with default inits
    clip = ckpt.build_clip(ckpt.reference_config("sd15_text_encoder"))
    for model in (unet, vae, clip):
        model.to_empty(device=device)
        for module in model.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        for name, buffer in model.named_buffers():  # e.g. CLIP's position ids
            if "position_ids" in name:
                buffer.copy_(torch.arange(buffer.shape[-1], device=device).expand_as(buffer))
    ckpt.save_single_file(path, unet=unet, vae=vae, text_encoder=clip, family="sd1", dtype=torch.float16)


def workflow(size: int, batch: int, steps: int, seed: int) -> dict:
    def link(node, out):
        return {"node": node, "output": out}
    return {"version": 1, "nodes": {
        "4": {"type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15-random.safetensors"}},
        "6": {"type": "CLIPTextEncode", "inputs": {"text": "a photo of a cat", "clip": link("4", "CLIP")}},
        "7": {"type": "CLIPTextEncode", "inputs": {"text": "", "clip": link("4", "CLIP")}},
        "5": {"type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": batch}},
        "3": {"type": "KSampler", "inputs": {"model": link("4", "MODEL"), "seed": seed, "steps": steps, "cfg": 7.0,
                                             "sampler_name": "euler", "scheduler": "normal",
                                             "positive": link("6", "CONDITIONING"),
                                             "negative": link("7", "CONDITIONING"),
                                             "latent_image": link("5", "LATENT"), "denoise": 1.0}},
        "8": {"type": "VAEDecode", "inputs": {"samples": link("3", "LATENT"), "vae": link("4", "VAE")}},
        "9": {"type": "PreviewImage", "inputs": {"images": link("8", "IMAGE")}}}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sd15-bench-"))
    (work / "models" / "checkpoints").mkdir(parents=True)
    t0 = time.perf_counter()
    build_sd15(work / "models" / "checkpoints" / "sd15-random.safetensors")
    build_s = time.perf_counter() - t0
    env = Environment(registry=default_registry(plugins_dir=None), folders=Folders(work))
    executor = Executor(env)
    rows = []
    for k, batch in enumerate(args.batches):
        for repeat in range(2):  # the first run of each batch size includes loading and warm-up
            stamps: list[float] = []
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            result = executor.run(workflow(args.size, batch, args.steps, seed=100 * k + repeat),
                                  on_event=lambda name, data: stamps.append(time.perf_counter())
                                  if name == "progress" and data["node"] == "3" else None)
            total = time.perf_counter() - started
            assert result.status == "success", result.errors
            image = result.value("8")
            assert torch.isfinite(image).all()
            sampling = stamps[-1] - stamps[0]
            peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
            rows.append((batch, "cold" if repeat == 0 else "warm", (len(stamps) - 1) / sampling, total, peak))
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"SD1.5 random weights, {args.size}x{args.size}, {args.steps} steps euler, CFG 7, {env.devices.dtype}, "
          f"{device}, torch {torch.__version__} (checkpoint built in {build_s:.1f} s)")
    print(f"{'batch':>5} {'run':>5} {'it/s':>8} {'images/s':>9} {'workflow s':>11} {'peak VRAM GiB':>14}")
    for batch, kind, its, total, peak in rows:
        print(f"{batch:5d} {kind:>5} {its:8.2f} {its * batch / args.steps:9.2f} {total:11.2f} {peak:14.2f}")


if __name__ == "__main__":
    main()
