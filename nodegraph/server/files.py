"""File routes' logic, shared by the native and the ComfyUI API: view, upload, model lists, stats.

Every path goes through Folders.safe_path, which refuses traversal and symlinks that lead out of
the input / output / temp folder. Uploads are bounded in bytes and in decoded pixels, and must be
images PIL can read.
"""
from __future__ import annotations

import errno
import io
import json
import mimetypes
import os
import platform
import re
import sys
import unicodedata
from pathlib import Path

from fastapi import HTTPException, UploadFile
from fastapi.responses import FileResponse, Response
from PIL import Image

from ..folders import FolderError
from .security import redact_argv

IMAGE_KINDS = ("output", "input", "temp")
MODEL_KINDS = ("checkpoints", "loras", "vae", "controlnet", "upscale_models", "embeddings", "clip", "clip_vision",
               "unet", "diffusion_models", "text_encoders", "style_models", "gligen", "hypernetworks", "vae_approx",
               "photomaker", "gan")
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
# what LoadImage lists; a mask upload is written as PNG
IMAGE_UPLOAD_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
MASK_UPLOAD_EXTENSIONS = (".png",)
MAX_UPLOAD_NAME = 200  # characters, and UTF-8 bytes (file systems allow 255 bytes)


def image_path(env, filename: str, subfolder: str, kind: str) -> Path:
    """The path of an existing image file; 400 for a bad request, 403 for an escape, 404 if missing."""
    if kind not in IMAGE_KINDS:
        raise HTTPException(400, f"type must be one of {', '.join(IMAGE_KINDS)}")
    if not filename or "\x00" in filename or "\x00" in subfolder:
        raise HTTPException(400, "a file name is required")
    try:
        path = env.folders.safe_path(kind, filename, subfolder)
    except FolderError as exc:
        raise HTTPException(403, str(exc)) from exc
    except (OSError, ValueError, RuntimeError) as exc:
        raise HTTPException(400, f"bad file name: {exc}") from exc
    if not path.is_file():
        raise HTTPException(404, f"{filename!r} not found in the {kind} folder")
    return path


def view(env, filename: str, subfolder: str = "", kind: str = "output", channel: str | None = None) -> Response:
    path = image_path(env, filename, subfolder, kind)
    if channel in ("rgb", "a"):
        try:
            with Image.open(path) as im:
                problem = env.limits.image_size_problem(*im.size)
                if problem:
                    raise HTTPException(413, problem)
                if channel == "rgb":
                    out = im.convert("RGB")
                else:
                    alpha = im.getchannel("A") if im.mode == "RGBA" else Image.new("L", im.size, 255)
                    out = Image.new("RGBA", im.size)
                    out.putalpha(alpha)
                buffer = io.BytesIO()
                out.save(buffer, format="PNG")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise HTTPException(400, f"not an image: {exc}") from exc
        return Response(buffer.getvalue(), media_type="image/png")
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media, headers={"Content-Disposition": f'inline; filename="{_ascii(path.name)}"'})


def _ascii(name: str) -> str:
    return name.encode("ascii", "replace").decode().replace('"', "_")


def _check_image(data: bytes, limits) -> Image.Image:
    try:
        im = Image.open(io.BytesIO(data))
        width, height = im.size  # header only: nothing decoded yet
    except Image.DecompressionBombError as exc:
        raise HTTPException(413, f"the image has too many pixels: {exc}") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise HTTPException(400, f"not an image PIL can read: {exc}") from exc
    problem = limits.image_size_problem(width, height)
    if problem:
        raise HTTPException(413, problem)
    return im


def name_problem(name: str, what: str = "file name") -> str | None:
    """Why a name given by a client cannot become a file name: too long, or characters that hide
    what a name is (control characters, right-to-left overrides, zero-width marks)."""
    if len(name) > MAX_UPLOAD_NAME or len(name.encode("utf-8", "surrogatepass")) > MAX_UPLOAD_NAME:
        return f"the {what} is longer than {MAX_UPLOAD_NAME} characters"
    for char in name:
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            return f"the {what} holds the invisible or control character U+{ord(char):04X}"
    return None


async def read_upload(upload: UploadFile, max_bytes: int) -> bytes:
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise HTTPException(413, f"the file is larger than {max_bytes} bytes")
    return data


def upload_target(env, filename: str | None, subfolder: str, kind: str, overwrite: bool, data: bytes,
                  extensions: tuple[str, ...] = IMAGE_UPLOAD_EXTENSIONS) -> tuple[Path, str]:
    """Where an upload goes: a plain name inside the folder, renamed 'name (1).ext' unless overwriting.
    400 for a name that is too long, hides characters, or has an extension not in `extensions`."""
    if kind not in IMAGE_KINDS:
        raise HTTPException(400, f"type must be one of {', '.join(IMAGE_KINDS)}")
    name = Path((filename or "").replace("\\", "/")).name
    if not name or name in (".", "..") or "\x00" in name or "\x00" in subfolder:
        raise HTTPException(400, "the upload needs a file name")
    problem = name_problem(name) or name_problem(subfolder, "subfolder")
    if problem:
        raise HTTPException(400, problem)
    if os.path.splitext(name)[1].lower() not in extensions:
        raise HTTPException(400, f"{name[:100]!r}: an upload here must end in {', '.join(extensions)}")
    try:
        path = env.folders.safe_path(kind, name, subfolder)
        root = env.folders.dir_for(kind).resolve()
        if path.parent != root and root not in path.parent.parents:
            raise HTTPException(403, "subfolder is outside the folder")
        stem, suffix = os.path.splitext(name)
        k = 1
        while path.exists() and not overwrite:
            if path.is_file() and path.read_bytes() == data:
                break  # the same file again: reuse it, as ComfyUI does
            name = f"{stem} ({k}){suffix}"
            path = path.parent / name
            k += 1
        if path.exists() and not path.is_file():
            raise HTTPException(400, f"{name!r} exists and is not a file")
    except FolderError as exc:
        raise HTTPException(403, str(exc)) from exc
    except (OSError, ValueError, RuntimeError) as exc:  # a name the file system refuses
        raise HTTPException(400, f"bad file name: {exc}") from exc
    return path, name


async def upload_image(env, limits, image: UploadFile, subfolder: str, kind: str, overwrite: str | None,
                       original_ref: str | None = None) -> dict:
    """Save an uploaded image (raw bytes, metadata kept). With original_ref (a mask upload), the
    mask's alpha is put into the referenced image and that is saved instead."""
    subfolder = subfolder or ""
    data = await read_upload(image, limits.max_upload_bytes)
    _check_image(data, limits)
    if original_ref is not None:
        data = _apply_mask(env, data, original_ref, limits)
    extensions = MASK_UPLOAD_EXTENSIONS if original_ref is not None else IMAGE_UPLOAD_EXTENSIONS
    path, name = upload_target(env, image.filename, subfolder, kind, overwrite in ("true", "1", "True"), data,
                               extensions)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise HTTPException(507, f"no room to store the upload: {exc.strerror}") from exc
        raise HTTPException(400, f"cannot store the upload under this name: {exc.strerror}") from exc
    return {"name": name, "subfolder": subfolder, "type": kind}


def _apply_mask(env, mask_bytes: bytes, original_ref: str, limits) -> bytes:
    try:
        ref = json.loads(original_ref)
        filename, sub, kind = str(ref["filename"]), str(ref.get("subfolder") or ""), str(ref.get("type") or "output")
    except (ValueError, KeyError, TypeError) as exc:
        raise HTTPException(400, "original_ref must be JSON {filename, subfolder, type}") from exc
    path = image_path(env, filename, sub, kind)
    try:
        with Image.open(path) as original:
            problem = limits.image_size_problem(original.width, original.height, "the original image")
            if problem:
                raise HTTPException(413, problem)
            text = dict(getattr(original, "text", {}) or {})
            rgba = original.convert("RGBA")
        mask = Image.open(io.BytesIO(mask_bytes)).convert("RGBA")
        if mask.size != rgba.size:
            mask = mask.resize(rgba.size)
        rgba.putalpha(mask.getchannel("A"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise HTTPException(400, f"cannot apply the mask: {exc}") from exc
    from ..formats.png import png_info

    buffer = io.BytesIO()
    rgba.save(buffer, format="PNG", pnginfo=png_info(text), compress_level=4)
    return buffer.getvalue()


# --- models -----------------------------------------------------------------------------------
def model_kinds(env) -> list[str]:
    kinds = set(MODEL_KINDS) | set(env.registry.model_folders)
    models = env.folders.models
    if models.is_dir():
        kinds |= {p.name for p in models.iterdir() if p.is_dir() and _NAME.match(p.name)}
    return sorted(kinds)


def model_list(env, folder: str) -> list[str]:
    if not _NAME.match(folder) or folder not in model_kinds(env):
        raise HTTPException(404, f"unknown model folder {folder[:100]!r}; known: {', '.join(model_kinds(env))}")
    return env.folders.list(folder)


def model_info(env, folder: str, name: str) -> dict:
    """What the editor needs to know of a model file before loading it: its native image size, from
    the safetensors header (ours: `nodegraph.image_size`; Stability's ModelSpec: `modelspec.resolution`
    "WxH"). None when the file does not say (a real SD1.5 checkpoint is then taken as ComfyUI's 512)."""
    model_list(env, folder)  # 404 for an unknown folder
    try:
        path = env.folders.find(folder, name)
    except Exception as exc:
        raise HTTPException(404, str(exc)) from exc
    meta: dict = {}
    if path.is_file() and path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), "pt") as f:
                meta = dict(f.metadata() or {})
        except Exception:
            meta = {}
    size = None
    if str(meta.get("nodegraph.image_size", "")).isdigit():
        size = [int(meta["nodegraph.image_size"])] * 2
    else:
        w, _, h = str(meta.get("modelspec.resolution", "")).partition("x")
        if w.strip().isdigit() and h.strip().isdigit():
            size = [int(w), int(h)]
    return {"name": name, "image_size": size}


# --- system stats -------------------------------------------------------------------------------
def system_stats(env) -> dict:
    """ComfyUI's layout ({system, devices}); the native route adds more keys on top."""
    import torch

    from .. import __version__

    try:
        import psutil

        vm = psutil.virtual_memory()
        ram_total, ram_free = vm.total, vm.available
    except ImportError:
        ram_total = ram_free = 0
    device = env.devices.device
    vram_total = vram_free = torch_total = torch_free = 0
    name = str(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        vram_free, vram_total = torch.cuda.mem_get_info(index)
        torch_total = torch.cuda.memory_reserved(index)
        torch_free = torch_total - torch.cuda.memory_allocated(index)
        name = f"{device} {torch.cuda.get_device_name(index)}"
    elif device.type == "cpu":
        vram_total, vram_free = ram_total, ram_free
    return {
        "system": {"os": os.name, "platform": platform.platform(), "ram_total": ram_total, "ram_free": ram_free,
                   "comfyui_version": f"nodegraph {__version__}", "nodegraph_version": __version__,
                   "python_version": sys.version, "pytorch_version": torch.__version__, "embedded_python": False,
                   "argv": redact_argv(sys.argv)},
        "devices": [{"name": name, "type": device.type, "index": device.index, "vram_total": vram_total,
                     "vram_free": vram_free, "torch_vram_total": torch_total, "torch_vram_free": torch_free}],
    }
