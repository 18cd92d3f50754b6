"""Latents to and from ComfyUI's .latent files (nodes.py SaveLatent / LoadLatent).

A .latent file is safetensors with the batch under "latent_tensor" and an empty tensor under
"latent_format_version_0". Files without that marker come from ComfyUI before the marker existed, when
latents were stored scaled by the SD VAE's 0.18215: they are divided by it on load. The metadata holds
the prompt and extra_pnginfo as JSON strings, as in ComfyUI's PNGs.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from nodegraph import LATENT, Choice, Input, Output, String, node

FORMAT_MARKER = "latent_format_version_0"
OLD_FILE_SCALE = 1.0 / 0.18215
SUFFIX = ".latent"


def input_latents(env) -> list[str]:
    """The .latent files directly in the input folder (ComfyUI does not look into sub-folders)."""
    root = env.folders.input
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_file() and p.name.endswith(SUFFIX))


def next_counter(folder: Path, name: str) -> int:
    """ComfyUI's counter: one more than the highest NAME_<digits>_ file of the folder, any extension."""
    pattern = re.compile(re.escape(name) + r"_(\d+)_")
    numbers = [int(m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name))] if folder.is_dir() else []
    return max(numbers, default=0) + 1


def file_metadata(ctx) -> dict[str, str]:
    if ctx.extra.get("no_metadata"):
        return {}
    prompt = (ctx.extra.get("metadata_text") or {}).get("prompt")
    metadata = {"prompt": json.dumps(prompt) if prompt is not None else "", "nodegraph": json.dumps(ctx.workflow)}
    for key, value in (ctx.extra.get("extra_pnginfo") or {}).items():
        metadata[key] = json.dumps(value)
    return metadata


@node(category="_for_testing", output_node=True)
class SaveLatent:
    """Save latents as a .latent file in the output folder (prefix may name a sub-folder)."""
    inputs = [Input("samples", LATENT), String("filename_prefix", "latents/ComfyUI")]
    outputs = []

    def run(self, ctx, samples, filename_prefix):
        root = ctx.folders.dir_for("output")
        prefix = Path(filename_prefix)
        if prefix.is_absolute() or ".." in prefix.parts or not prefix.name:
            raise ValueError(f"filename_prefix {filename_prefix!r} must name a file inside the output folder")
        folder = root / prefix.parent
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{prefix.name}_{next_counter(folder, prefix.name):05}_{SUFFIX}"
        tensors = {"latent_tensor": samples["samples"].contiguous(), FORMAT_MARKER: torch.tensor([])}
        save_file(tensors, str(folder / name), metadata=file_metadata(ctx))
        subfolder = prefix.parent.as_posix()
        ctx.show(latents=[{"filename": name, "subfolder": "" if subfolder == "." else subfolder, "type": "output"}])


@node(category="_for_testing")
class LoadLatent:
    """Load a .latent file from the input folder (ComfyUI's own and older ones, see the module notes)."""
    inputs = [Choice("latent", input_latents)]
    outputs = [Output("LATENT", LATENT)]

    @classmethod
    def fingerprint(cls, env, latent):
        return hashlib.sha256(env.folders.safe_path("input", latent).read_bytes()).hexdigest()

    def run(self, ctx, latent):
        path = ctx.folders.safe_path("input", latent)
        tensors = load_file(str(path), device="cpu")
        if "latent_tensor" not in tensors:
            raise ValueError(f"latent: {latent} holds no 'latent_tensor' (keys: {', '.join(sorted(tensors))})")
        multiplier = 1.0 if FORMAT_MARKER in tensors else OLD_FILE_SCALE
        return ({"samples": tensors["latent_tensor"].float() * multiplier},)
