"""Turn train_default.py's output into the shipped single-file checkpoint (SD1 original layout).

    python training/export_default.py RUN_DIR [--out nodes/diffusion/weights/nodegraph-default.safetensors]

RUN_DIR holds default_unet.safetensors and default_vae_text.safetensors (diffusers layout, fp16,
configs and training metrics in their metadata). The export
  - records the latent scale as the VAE's scaling_factor (the loader reads it from the hints) and
    as "nodegraph.latent_scale",
  - zeroes the token-embedding rows that no caption of the default world uses (they were never
    trained; zeros keep unknown words neutral and let git compress the file),
  - fits the latent -> RGB preview projection on default-world images,
  - writes fp16 with save_single_file and checks that load_checkpoint reads every key back.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "training"))

DEFAULT_OUT = ROOT / "nodes" / "diffusion" / "weights" / "nodegraph-default.safetensors"


def _part(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v.float() for k, v in sd.items() if k.startswith(prefix)}


def load_run(run_dir: Path):
    """(vae, unet, text_encoder, scale, info) from a training run's diffusers-layout files."""
    from train_default import build_models

    unet_file, rest_file = run_dir / "default_unet.safetensors", run_dir / "default_vae_text.safetensors"
    with safe_open(str(unet_file), "pt") as f:
        meta = dict(f.metadata())
    vae, unet, text_encoder = build_models()
    unet.load_state_dict(_part(load_file(str(unet_file)), "unet."), strict=True)
    rest = load_file(str(rest_file))
    vae.load_state_dict(_part(rest, "vae."), strict=True)
    missing, unexpected = text_encoder.load_state_dict(_part(rest, "text_encoder."), strict=False)
    assert not unexpected and all("position_ids" in k for k in missing), (missing, unexpected)
    scale = float(meta["nodegraph.latent_scale"])
    return vae.eval(), unet.eval(), text_encoder.eval(), scale, json.loads(meta["nodegraph.info"])


def export(run_dir: Path, out: Path) -> Path:
    from nodes.diffusion.checkpoint.single_file import load_checkpoint
    from nodes.diffusion.checkpoint.writer import save_single_file
    from training.default_world import generate
    from training.default_world.vocabulary import token_used_mask
    from nodes.diffusion.models import VAEModel, fit_latent_rgb

    vae, unet, text_encoder, scale, info = load_run(run_dir)
    vae.register_to_config(scaling_factor=scale)
    with torch.no_grad():
        table = text_encoder.get_input_embeddings().weight
        table[~torch.from_numpy(token_used_mask())] = 0.0
        pixels = generate(seed=12345, count=64).images_bhwc()
        rgb_factors, rgb_bias = fit_latent_rgb(VAEModel(vae), pixels)
    summary = {k: info[k] for k in ("seed", "image_size", "latent_downscale", "parameters", "total_seconds", "device")}
    summary.update(vae_final=info["vae"], unet_final=info["unet"], eval=info["eval"], latents=info["latents"])
    metadata = {
        "nodegraph.latent_scale": repr(scale),
        "nodegraph.image_size": str(info["image_size"]),
        "nodegraph.latent_downscale": str(info["latent_downscale"]),
        "nodegraph.training": json.dumps(summary),
        "nodegraph.description": "nodegraph embedded default text-to-image model, trained on the default world "
                                 "(one coloured shape on a plain background, 128x128); see training/README.md",
    }
    save_single_file(out, unet=unet, vae=vae, text_encoder=text_encoder, metadata=metadata, family="sd1",
                     prediction_type="eps", dtype=torch.float16, latent_rgb_factors=rgb_factors,
                     latent_rgb_bias=rgb_bias)
    loaded = load_checkpoint(out)
    assert loaded.family == "sd1" and not loaded.unused_keys, loaded.unused_keys
    assert abs(loaded.vae_config["scaling_factor"] - scale) < 1e-9
    print(f"wrote {out} ({out.stat().st_size / 2**20:.2f} MiB), latent scale {scale:.5f}, eval {info['eval']}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    export(args.run_dir, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
