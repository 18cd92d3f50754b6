"""Image helpers every pack needs: IMAGE tensors <-> PIL, writing image batches to a folder, and
fitting batches to one another.

IMAGE is a float tensor [B, H, W, C] in 0..1 (C = 3, or 4 with alpha); MASK is [B, H, W] in 0..1.
"""
from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """One image [H, W, C] (or a batch of one) as a PIL image."""
    if image.ndim == 4:
        image = image[0]
    array = (image.detach().float().clamp(0, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
    if array.shape[-1] == 1:
        array = array[..., 0]
    return Image.fromarray(array)


def tensor_to_pil_truncated(image: torch.Tensor) -> Image.Image:
    """One image [H, W, C] as ComfyUI's SaveImage converts it: np.clip(255. * i, 0, 255).astype(np.uint8),
    which truncates (tensor_to_pil rounds), so saved files match ComfyUI's byte for byte."""
    if image.ndim == 4:
        image = image[0]
    array = np.clip(255.0 * image.detach().float().cpu().numpy(), 0, 255).astype(np.uint8)
    if array.shape[-1] == 1:
        array = array[..., 0]
    return Image.fromarray(array)


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """A PIL image as a batch of one [1, H, W, C] (RGB, or RGBA if it has alpha)."""
    mode = "RGBA" if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info else "RGB"
    array = np.asarray(image.convert(mode), dtype=np.float32) / 255.0
    return torch.from_numpy(array.copy())[None]


def next_counter(folder: Path, prefix: str) -> int:
    """ComfyUI's naming: prefix_00001_.png, counting on from the highest number present."""
    pattern = re.compile(re.escape(Path(prefix).name) + r"_(\d{5})_\.png$")
    highest = 0
    if folder.is_dir():
        for path in folder.iterdir():
            match = pattern.match(path.name)
            if match:
                highest = max(highest, int(match.group(1)))
    return highest + 1


MAX_PREFIX_LENGTH = 200


def filename_prefix_problem(prefix: str) -> str | None:
    """Why a filename_prefix ("name" or "sub/folder/name") cannot name files inside the output
    folder; for validate_inputs, so a bad one fails before any work, not after sampling."""
    if len(prefix) > MAX_PREFIX_LENGTH:
        return f"filename_prefix is {len(prefix)} characters long, more than {MAX_PREFIX_LENGTH}"
    if any(ord(c) < 32 or ord(c) == 127 for c in prefix):
        return "filename_prefix holds a NUL or another control character"
    parts = prefix.replace("\\", "/").split("/")
    if prefix.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", prefix) or Path(prefix).is_absolute():
        return f"filename_prefix {prefix[:60]!r} is an absolute path: it must stay inside the output folder"
    if ".." in parts:
        return f"filename_prefix {prefix[:60]!r} climbs out with '..': it must stay inside the output folder"
    return None


def save_images(ctx, images: torch.Tensor, prefix: str, kind: str = "output") -> list[dict]:
    """Write a batch as PNGs with the workflow embedded; returns UI records {filename, subfolder, type}.

    A PNG carries ComfyUI's chunks ("prompt", and each `extra_pnginfo` entry such as "workflow") and our
    native "nodegraph" document (formats/png.py metadata_chunks); `no_metadata` (the job's extra, set by
    --disable-metadata) writes none, as ComfyUI's flag of that name."""
    root = ctx.folders.dir_for(kind)
    sub = Path(prefix).parent
    problem = filename_prefix_problem(prefix)
    if problem or sub.is_absolute() or ".." in sub.parts:
        raise ValueError(problem or f"filename_prefix {prefix!r} must stay inside the {kind} folder")
    folder = root / sub
    folder.mkdir(parents=True, exist_ok=True)
    counter = next_counter(folder, prefix)
    from .formats.png import metadata_chunks, png_info  # here: importing the formats package loads every adapter

    chunks = {} if ctx.extra.get("no_metadata") else metadata_chunks(ctx.workflow, ctx.extra, ctx.env.registry)
    info = png_info({k: json.dumps(v) if not isinstance(v, str) else v for k, v in chunks.items()})
    records = []
    for k in range(images.shape[0]):
        picture = tensor_to_pil_truncated(images[k])
        while True:  # several workers (Ray) may save into one folder at once: a name is taken, never overwritten
            name = f"{Path(prefix).name}_{counter:05d}_.png"
            try:
                write_atomically(folder / name, lambda f: picture.save(f, format="PNG", pnginfo=info, compress_level=4),
                                 durable=kind == "output", exclusive=True)
                break
            except FileExistsError:
                counter = next_counter(folder, prefix)
        counter += 1
        records.append({"filename": name, "subfolder": sub.as_posix() if str(sub) != "." else "", "type": kind})
    return records


def repeat_to_batch(x: torch.Tensor, batch: int) -> torch.Tensor:
    """Cut or cycle a batch [B, ...] to `batch` items (ComfyUI's comfy.utils.repeat_to_batch_size)."""
    if x.shape[0] > batch:
        return x[:batch]
    if x.shape[0] < batch:
        return x.repeat(-(-batch // x.shape[0]), *([1] * (x.ndim - 1)))[:batch]
    return x


def composite(destination: torch.Tensor, source: torch.Tensor, x: int, y: int, mask: torch.Tensor | None = None,
              multiplier: int = 8, resize_source: bool = False) -> torch.Tensor:
    """ComfyUI's comfy_extras/nodes_mask.composite on [B, C, H, W] tensors (LatentCompositeMasked runs it with
    multiplier 8, ImageCompositeMasked with 1): source pasted into destination (changed in place and
    returned) at (x, y) in units of 1/multiplier cell, clamped to the picture, weighted by the mask
    resized (bilinear) to the source; the source batch is cycled to the destination's."""
    source = source.to(destination.device)
    if resize_source:
        source = F.interpolate(source, size=destination.shape[-2:], mode="bilinear")
    source = repeat_to_batch(source, destination.shape[0])
    x = max(-source.shape[-1] * multiplier, min(x, destination.shape[-1] * multiplier))
    y = max(-source.shape[-2] * multiplier, min(y, destination.shape[-2] * multiplier))
    left, top = x // multiplier, y // multiplier
    right, bottom = left + source.shape[-1], top + source.shape[-2]
    if mask is None:
        mask = torch.ones_like(source)
    else:
        mask = F.interpolate(mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1]).to(source),
                             size=source.shape[-2:], mode="bilinear")
        mask = repeat_to_batch(mask, source.shape[0])
    # only the part of the source that lies on the destination
    visible_w, visible_h = destination.shape[-1] - left + min(0, x), destination.shape[-2] - top + min(0, y)
    mask = mask[:, :, :visible_h, :visible_w]
    source_part = mask * source[..., :visible_h, :visible_w]
    destination_part = (torch.ones_like(mask) - mask) * destination[..., top:bottom, left:right]
    destination[..., top:bottom, left:right] = source_part + destination_part
    return destination


PARTIAL_SUFFIX = ".nodegraph-partial"  # a file being written; renamed into place once complete


def write_atomically(path: Path, write, durable: bool = True, exclusive: bool = False) -> None:
    """`write(file)` into a temporary name in the same folder, then rename it to `path`: a reader, or a
    process killed mid-write, never leaves a half-written file under the final name. `durable`: the
    bytes reach the disk before the rename (a power cut too leaves the old file or the whole new one).
    `exclusive`: raise FileExistsError rather than replace an existing `path`."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{PARTIAL_SUFFIX}")
    try:
        with open(temp, "wb") as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        if exclusive:
            os.link(temp, path)  # fails if the name exists; the temporary name goes below
            temp.unlink()
        else:
            os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def remove_partial_files(folder: Path) -> int:
    """Delete what write_atomically left behind in a process that was killed; returns how many.
    Call it when nothing writes there (at server start)."""
    removed = 0
    if Path(folder).is_dir():
        for path in Path(folder).rglob(f".*{PARTIAL_SUFFIX}"):
            try:
                path.unlink()
                removed += 1
            except OSError:
                pass
    return removed


MAX_BATCH_PIXELS = 2**30  # 12 GiB as a float RGB IMAGE: beyond it a typo, not a picture


def center_crop_margins(old_w: int, old_h: int, width: int, height: int) -> tuple[int, int]:
    """(x, y) margins to cut from each side so that old_w x old_h takes the aspect ratio of
    width x height, as ComfyUI's common_upscale(..., crop="center") rounds them."""
    old_aspect, new_aspect = old_w / old_h, width / height
    x = y = 0
    if old_aspect > new_aspect:
        x = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
    elif old_aspect < new_aspect:
        y = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
    return x, y


# --- ComfyUI's comfy.utils.common_upscale, the one resize every pack uses ----------------------------
# The arithmetic follows ComfyUI 0.8's comfy/utils.py step by step (tensor layouts included) so that
# results match it to the bit: a different but equivalent formula drifts by ULPs.

def _slerp_rows(a: torch.Tensor, b: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Slerp rows of a [N,C] towards b by r [N,1], the norms interpolated linearly. Zero rows count
    as zero directions; (nearly) equal directions give a, opposite ones a plain lerp (ComfyUI's cases)."""
    norm_a, norm_b = torch.norm(a, dim=-1, keepdim=True), torch.norm(b, dim=-1, keepdim=True)
    unit_a = torch.where(norm_a == 0.0, torch.zeros_like(a), a / norm_a)
    unit_b = torch.where(norm_b == 0.0, torch.zeros_like(b), b / norm_b)
    dot = (unit_a * unit_b).sum(1)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    out = (torch.sin((1.0 - r.squeeze(1)) * omega) / so).unsqueeze(1) * unit_a \
        + (torch.sin(r.squeeze(1) * omega) / so).unsqueeze(1) * unit_b
    out = out * (norm_a * (1.0 - r) + norm_b * r)
    out = torch.where((dot > 1 - 1e-5).unsqueeze(1), a, out)
    return torch.where((dot < 1e-5 - 1).unsqueeze(1), a * (1.0 - r) + b * r, out)


def _bilinear_taps(old: int, new: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ratio, left index, right index), each [new], of a half-pixel bilinear resize of one axis,
    taken, as ComfyUI does, by bilinearly resizing the index ramps themselves."""
    ramp = torch.arange(old, dtype=torch.float32, device=device).reshape(1, 1, 1, -1)
    left = F.interpolate(ramp, size=(1, new), mode="bilinear")
    right_ramp = ramp + 1
    right_ramp[..., -1] -= 1
    right = F.interpolate(right_ramp, size=(1, new), mode="bilinear")
    return (left - left.floor()).flatten(), left.to(torch.int64).flatten(), right.to(torch.int64).flatten()


def _bislerp_last_axis(x: torch.Tensor, new: int) -> torch.Tensor:
    """Resize [N,C,H,W] along W, slerping between the two neighbouring channel vectors."""
    n, c, h, _ = x.shape
    ratio, left, right = _bilinear_taps(x.shape[-1], new, x.device)
    a = x.gather(-1, left.view(1, 1, 1, -1).expand(n, c, h, -1)).movedim(1, -1).reshape(-1, c)
    b = x.gather(-1, right.view(1, 1, 1, -1).expand(n, c, h, -1)).movedim(1, -1).reshape(-1, c)
    r = ratio.view(1, 1, 1, -1).expand(n, 1, h, -1).movedim(1, -1).reshape(-1, 1)
    return _slerp_rows(a, b, r).reshape(n, h, new, c).movedim(-1, 1)


def bislerp(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """ComfyUI's "bislerp" resize of [B,C,H,W]: along the width, then the height, in float32."""
    x = _bislerp_last_axis(samples.float(), width)
    x = _bislerp_last_axis(x.transpose(-1, -2), height).transpose(-1, -2)
    return x.to(samples.dtype)


def lanczos(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """ComfyUI's "lanczos" resize of [B,C,H,W]: each image through PIL as 8-bit (truncated, not rounded)."""
    out = []
    for image in samples:
        pixels = np.clip(255.0 * image.movedim(0, -1).float().cpu().numpy(), 0, 255).astype(np.uint8)
        grey = pixels.shape[-1] == 1
        resized = Image.fromarray(pixels[..., 0] if grey else pixels).resize((width, height), Image.Resampling.LANCZOS)
        array = np.array(resized).astype(np.float32) / 255.0
        out.append(torch.from_numpy(array[..., None] if grey else array).movedim(-1, 0))
    return torch.stack(out).to(samples.device, samples.dtype)


def common_upscale(samples: torch.Tensor, width: int, height: int, method: str, crop: str) -> torch.Tensor:
    """Resize [B,C,H,W] (or [B,C,T,...,H,W]) to height x width: crop="center" first cuts the input to the
    new aspect ratio; method is "bislerp", "lanczos" or a torch interpolate mode ("nearest-exact",
    "bilinear", "area", "bicubic": half-pixel centres, no clamping, so bicubic may overshoot 0..1)."""
    shape = tuple(samples.shape)
    if len(shape) > 4:  # fold the extra dimensions into the batch, as ComfyUI does for video latents
        samples = samples.reshape(shape[0], shape[1], -1, shape[-2], shape[-1]).movedim(2, 1)
        samples = samples.reshape(-1, shape[1], shape[-2], shape[-1])
    if crop == "center":
        old_h, old_w = samples.shape[-2:]
        x, y = center_crop_margins(old_w, old_h, width, height)
        samples = samples.narrow(-2, y, old_h - 2 * y).narrow(-1, x, old_w - 2 * x)
    if method == "bislerp":
        out = bislerp(samples, width, height)
    elif method == "lanczos":
        out = lanczos(samples, width, height)
    else:
        out = F.interpolate(samples, size=(height, width), mode=method)
    if len(shape) == 4:
        return out
    out = out.reshape(shape[0], -1, shape[1], height, width).movedim(2, 1)
    return out.reshape(shape[:-2] + (height, width))


def pixel_budget_problem(width: int, height: int, batch_size: int) -> str | None:
    """For validate_inputs: reject sizes whose product would allocate absurd memory."""
    total = width * height * batch_size
    if total > MAX_BATCH_PIXELS:
        return (f"width × height × batch_size = {total:,} pixels, above the limit of {MAX_BATCH_PIXELS:,} "
                f"({total * 12 / 2**30:,.0f} GiB as an RGB image)")
    return None
