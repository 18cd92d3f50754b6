"""ComfyUI's `comfy.utils`: progress bars, resizing, tiled processing, safe file loading.

ProgressBar reports through the running node's context, so its updates become our progress
events (the CLI's bar, the websocket's `progress`) and honour interrupt, as ComfyUI's global hook
does. load_torch_file never unpickles code: .ckpt/.pt files load with weights_only=True whatever
`safe_load` says.
"""
from __future__ import annotations

import itertools
import math

import safetensors.torch
import torch
from PIL import Image

from .. import runtime
from ...images import bislerp, lanczos  # noqa: F401  (ComfyUI's names here)
from ...images import common_upscale as _common_upscale
from ..surface import unsupported

PROGRESS_BAR_ENABLED = True
PROGRESS_BAR_HOOK = None  # a pack may install its own, as in ComfyUI


def set_progress_bar_enabled(enabled: bool) -> None:
    global PROGRESS_BAR_ENABLED
    PROGRESS_BAR_ENABLED = enabled


def set_progress_bar_global_hook(function) -> None:
    global PROGRESS_BAR_HOOK
    PROGRESS_BAR_HOOK = function


def _report_to_node(ctx):
    def hook(value, total, preview, node_id=None):
        image = preview[1] if isinstance(preview, tuple) and len(preview) >= 2 else preview
        ctx.progress(value, total, image if isinstance(image, Image.Image) else None)

    return hook


class ProgressBar:
    """Progress of the node that made it (ComfyUI: through PROGRESS_BAR_HOOK)."""

    def __init__(self, total, node_id=None):
        self.total = total
        self.current = 0
        self.node_id = node_id
        current = runtime.running()
        self.hook = PROGRESS_BAR_HOOK or (_report_to_node(current.ctx) if current is not None else None)

    def update_absolute(self, value, total=None, preview=None):
        if total is not None:
            self.total = total
        self.current = min(value, self.total)
        if self.hook is not None:
            self.hook(self.current, self.total, preview, node_id=self.node_id)

    def update(self, value):
        self.update_absolute(self.current + value)


# --- files ----------------------------------------------------------------------------------------
def load_torch_file(ckpt, safe_load=False, device=None, return_metadata=False):
    """A state dict from .safetensors/.sft (with its metadata on request), or from a torch file loaded
    with weights_only=True; a file holding {"state_dict": ...} or a single dict is unwrapped."""
    device = torch.device("cpu") if device is None else torch.device(device)
    path = str(ckpt)
    metadata = None
    if path.lower().endswith((".safetensors", ".sft")):
        with safetensors.safe_open(path, framework="pt", device=device.type if device.type != "cuda" else str(device)) as f:
            sd = {k: f.get_tensor(k) for k in f.keys()}
            metadata = f.metadata() if return_metadata else None
    else:
        loaded = torch.load(path, map_location=device, weights_only=True)
        if isinstance(loaded, dict) and "state_dict" in loaded:
            sd = loaded["state_dict"]
        elif isinstance(loaded, dict) and len(loaded) == 1 and isinstance(next(iter(loaded.values())), dict):
            sd = next(iter(loaded.values()))
        else:
            sd = loaded
    return (sd, metadata) if return_metadata else sd


def save_torch_file(sd, ckpt, metadata=None) -> None:
    safetensors.torch.save_file(sd, ckpt, metadata=metadata)


# --- batches ----------------------------------------------------------------------------------------
def repeat_to_batch_size(tensor, batch_size, dim=0):
    n = tensor.shape[dim]
    if n > batch_size:
        return tensor.narrow(dim, 0, batch_size)
    if n < batch_size:
        reps = [1] * tensor.ndim
        reps[dim] = math.ceil(batch_size / n)
        return tensor.repeat(reps).narrow(dim, 0, batch_size)
    return tensor


def resize_to_batch_size(tensor, batch_size):
    """Pick evenly spread items to make a batch of batch_size (ComfyUI's index rounding)."""
    n = tensor.shape[0]
    if n == batch_size:
        return tensor
    if batch_size <= 1:
        return tensor[:batch_size]
    if batch_size < n:
        scale = (n - 1) / (batch_size - 1)
        index = [min(round(i * scale), n - 1) for i in range(batch_size)]
    else:
        scale = n / batch_size
        index = [min(math.floor((i + 0.5) * scale), n - 1) for i in range(batch_size)]
    return tensor[index]


# --- tiles ---------------------------------------------------------------------------------------
def reshape_mask(input_mask, output_shape):
    """A mask ([B,H,W], [H,W] or [B,1,H,W]) resized to a latent's shape [B, C, (T,) H, W]: interpolated
    (linear / bilinear / trilinear by the number of spatial dims), channels repeated, batch repeated."""
    dims = len(output_shape) - 2
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}.get(dims)
    if mode is None:
        raise ValueError(f"comfy.utils.reshape_mask: a latent shape with 1 to 3 spatial dims, got {tuple(output_shape)}")
    if dims == 2:
        input_mask = input_mask.reshape((-1, 1) + tuple(input_mask.shape[-2:]))
    elif dims == 3 and input_mask.ndim < 5:
        input_mask = input_mask.reshape((1, 1, -1) + tuple(input_mask.shape[-2:]))
    mask = torch.nn.functional.interpolate(input_mask, size=tuple(output_shape[2:]), mode=mode)
    if mask.shape[1] < output_shape[1]:
        mask = mask.repeat((1, output_shape[1]) + (1,) * dims)[:, :output_shape[1]]
    return repeat_to_batch_size(mask, output_shape[0])


def get_tiled_scale_steps(width, height, tile_x, tile_y, overlap):
    rows = 1 if height <= tile_y else math.ceil((height - overlap) / (tile_y - overlap))
    cols = 1 if width <= tile_x else math.ceil((width - overlap) / (tile_x - overlap))
    return rows * cols


@torch.inference_mode()
def tiled_scale_multidim(samples, function, tile=(64, 64), overlap=8, upscale_amount=4, out_channels=3,
                         output_device="cpu", downscale=False, index_formulas=None, pbar=None):
    """Run `function` over overlapping tiles of each item and blend the results with linear ramps
    over the (scaled) overlap, as ComfyUI does for upscalers and tiled VAEs."""
    dims = len(tile)
    as_list = lambda v: list(v) if isinstance(v, (tuple, list)) else [v] * dims  # noqa: E731
    scale, overlap = as_list(upscale_amount), as_list(overlap)
    index = as_list(index_formulas if index_formulas is not None else upscale_amount)

    def apply(f, value):
        return f(value) if callable(f) else (value / f if downscale else f * value)

    def scaled(shape):
        return [round(apply(scale[d], shape[d])) for d in range(dims)]

    output = torch.empty([samples.shape[0], out_channels] + scaled(samples.shape[2:]), device=output_device)
    for b in range(samples.shape[0]):
        s = samples[b:b + 1]
        if all(s.shape[d + 2] <= tile[d] for d in range(dims)):
            output[b:b + 1] = function(s).to(output_device)
            if pbar is not None:
                pbar.update(1)
            continue
        out = torch.zeros([1, out_channels] + scaled(s.shape[2:]), device=output_device)
        weight = torch.zeros_like(out)
        starts = [range(0, s.shape[d + 2] - overlap[d], tile[d] - overlap[d]) if s.shape[d + 2] > tile[d] else [0]
                  for d in range(dims)]
        for corner in itertools.product(*starts):
            piece, at = s, []
            for d in range(dims):
                pos = max(0, min(s.shape[d + 2] - overlap[d], corner[d]))
                piece = piece.narrow(d + 2, pos, min(tile[d], s.shape[d + 2] - pos))
                at.append(round(apply(index[d], pos)))
            result = function(piece).to(output_device)
            mask = torch.ones_like(result)
            for d in range(dims):
                feather = round(apply(scale[d], overlap[d]))
                if feather >= mask.shape[d + 2]:
                    continue
                for t in range(feather):
                    a = (t + 1) / feather
                    mask.narrow(d + 2, t, 1).mul_(a)
                    mask.narrow(d + 2, mask.shape[d + 2] - 1 - t, 1).mul_(a)
            o, w = out, weight
            for d in range(dims):
                o = o.narrow(d + 2, at[d], mask.shape[d + 2])
                w = w.narrow(d + 2, at[d], mask.shape[d + 2])
            o.add_(result * mask)
            w.add_(mask)
            if pbar is not None:
                pbar.update(1)
        output[b:b + 1] = out / weight
    return output


def tiled_scale(samples, function, tile_x=64, tile_y=64, overlap=8, upscale_amount=4, out_channels=3,
                output_device="cpu", pbar=None):
    return tiled_scale_multidim(samples, function, (tile_y, tile_x), overlap=overlap, upscale_amount=upscale_amount,
                                out_channels=out_channels, output_device=output_device, pbar=pbar)


def common_upscale(samples, width, height, upscale_method, crop):
    """ComfyUI's signature (packs pass upscale_method= and crop= by keyword)."""
    return _common_upscale(samples, width, height, upscale_method, crop)


def state_dict_prefix_replace(state_dict, replace_prefix, filter_keys=False):
    """Rename keys that start with each prefix of `replace_prefix` ({old: new}). In place, as ComfyUI,
    unless filter_keys: then only the renamed keys are returned, in a new dict."""
    out = {} if filter_keys else state_dict
    for old, new in replace_prefix.items():
        for key in [k for k in state_dict if k.startswith(old)]:
            out[new + key[len(old):]] = state_dict.pop(key)
    return out


ATTR_UNSET = object()  # ComfyUI's sentinel: set_attr(obj, name, ATTR_UNSET) deletes the attribute


def set_attr(obj, attr: str, value):
    """Set a dotted attribute ("block.0.weight"); returns the previous value (ATTR_UNSET if none)."""
    *path, last = attr.split(".")
    for name in path:
        obj = getattr(obj, name)
    previous = getattr(obj, last, ATTR_UNSET)
    if value is ATTR_UNSET:
        delattr(obj, last)
    else:
        setattr(obj, last, value)
    return previous


def set_attr_param(obj, attr: str, value):
    return set_attr(obj, attr, torch.nn.Parameter(value, requires_grad=False))


def get_attr(obj, attr: str):
    for name in attr.split("."):
        obj = getattr(obj, name)
    return obj


__getattr__ = unsupported(__name__)
