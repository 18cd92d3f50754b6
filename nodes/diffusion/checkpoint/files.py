"""Reading model files safely: tensors and metadata of .safetensors, or of .ckpt/.pt/.bin with weights_only,
and the loader hints that nodegraph's writer stores in the safetensors metadata."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import torch

from .layout import HINTS_KEY, CheckpointError

def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a .safetensors file, or of a .ckpt/.pt/.bin loaded with weights_only."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file {path} does not exist")
    if path.suffix.lower() in (".safetensors", ".sft"):
        from safetensors import safe_open
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                metadata = dict(f.metadata() or {})
                return {k: f.get_tensor(k) for k in f.keys()}, metadata
        except Exception as exc:
            raise CheckpointError(f"{path.name}: not a readable safetensors file ({exc})") from exc
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path.name}: could not be loaded safely with weights_only=True ({exc}); "
                              "convert it to .safetensors") from exc
    if isinstance(data, Mapping) and isinstance(data.get("state_dict"), Mapping):
        data = data["state_dict"]
    if not isinstance(data, Mapping):
        raise CheckpointError(f"{path.name}: holds a {type(data).__name__}, not a dict of tensors")
    return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}, {}


def read_hints(metadata: Mapping[str, str]) -> dict:
    try:
        return json.loads(metadata.get(HINTS_KEY, "{}")) or {}
    except (TypeError, ValueError):
        return {}
