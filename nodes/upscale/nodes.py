"""UpscaleModelLoader and ImageUpscaleWithModel (ComfyUI's names, inputs and outputs)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nodegraph import IMAGE, UPSCALE_MODEL, Input, ModelFile, ModelHandle, Output, node

from .loading import READ_OPTIONS, build_upscaler
from .tiling import tile_count, tiled_apply

FOLDER = "upscale_models"
TILE = 512  # ComfyUI's tile and overlap, in input pixels
OVERLAP = 32
MIN_TILE = 128  # out of memory below this: give up
OOM_ERRORS = tuple({getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError), torch.cuda.OutOfMemoryError})
LUMA = (0.299, 0.587, 0.114)


@node(category="loaders", display_name="Load Upscale Model")
class UpscaleModelLoader:
    """Load an upscale model (any architecture spandrel detects: ESRGAN, Real-ESRGAN, SwinIR, HAT,
    DAT, SPAN, Compact ...) from .safetensors or .pth; the architecture and scale come from the file."""
    inputs = [ModelFile("model_name", folder=FOLDER)]
    outputs = [Output("UPSCALE_MODEL", UPSCALE_MODEL)]

    @classmethod
    def fingerprint(cls, env, model_name):
        return env.models.fingerprint(FOLDER, model_name)

    def run(self, ctx, model_name):
        return ctx.models.load(FOLDER, model_name, build_upscaler, **READ_OPTIONS)


@node(category="image/upscaling", display_name="Upscale Image (using Model)")
class ImageUpscaleWithModel:
    """Upscale images with an upscale model, tile by tile (512 px tiles overlapping by 32, blended;
    the tile is halved when the GPU runs out of memory, down to 128). An alpha channel is scaled
    bilinearly beside the model, as ComfyUI does."""
    inputs = [Input("upscale_model", UPSCALE_MODEL), Input("image", IMAGE)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, upscale_model, image):
        if not isinstance(upscale_model, ModelHandle) or "scale" not in upscale_model.info:
            raise ValueError("upscale_model: expected a model from UpscaleModelLoader")
        if image.ndim != 4 or image.shape[0] == 0:
            raise ValueError(f"image: expected an IMAGE batch [B, H, W, C], got shape {tuple(image.shape)}")
        rgb, alpha = split_alpha(image, upscale_model.info["input_channels"])
        x = to_model_channels(rgb, upscale_model.info["input_channels"])
        tiling = upscale_model.info.get("tiling", "supported")
        tile = max(x.shape[-2:]) if tiling in ("internal", "discouraged") else TILE
        while True:
            try:
                out = upscale_batch(ctx, upscale_model, x, tile)
                break
            except OOM_ERRORS:
                smaller = TILE if tile > TILE else tile // 2  # a whole image first falls back to normal tiles
                if tiling == "internal" or smaller < MIN_TILE:
                    raise
                tile = smaller
                if ctx.devices.device.type == "cuda":
                    torch.cuda.empty_cache()
                ctx.warn(f"out of memory: retrying with {tile} px tiles")
        out = from_model_channels(out, rgb.shape[-1]).clamp(0, 1)
        if alpha is not None:
            size = out.shape[1:3]
            alpha = F.interpolate(alpha.movedim(-1, 1), size=size, mode="bilinear", align_corners=False).movedim(1, -1)
            out = torch.cat([out, alpha.clamp(0, 1)], dim=-1)
        return out


def split_alpha(image: torch.Tensor, model_channels: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """RGBA images through an RGB model: the alpha channel goes beside the model."""
    if image.shape[-1] == 4 and model_channels != 4:
        return image[..., :3], image[..., 3:4]
    return image, None


def to_model_channels(image: torch.Tensor, model_channels: int) -> torch.Tensor:
    """[B, H, W, C] -> [B, model_channels, H, W]: grey for 1-channel models, grey repeated for RGB models."""
    c = image.shape[-1]
    x = image.movedim(-1, 1).float()
    if c == model_channels:
        return x
    if model_channels == 1 and c == 3:
        luma = torch.tensor(LUMA, dtype=x.dtype).view(1, 3, 1, 1)
        return (x * luma).sum(dim=1, keepdim=True)
    if model_channels == 3 and c == 1:
        return x.expand(-1, 3, -1, -1)
    raise ValueError(f"image: {c} channels cannot feed this upscale model, which takes {model_channels}")


def from_model_channels(out: torch.Tensor, image_channels: int) -> torch.Tensor:
    """[B, C', H, W] model output -> IMAGE [B, H, W, C] (a grey model's output repeated for RGB inputs)."""
    if out.shape[1] == 1 and image_channels == 3:
        out = out.expand(-1, 3, -1, -1)
    return out.movedim(1, -1).contiguous()


def upscale_batch(ctx, handle: ModelHandle, x: torch.Tensor, tile: int) -> torch.Tensor:
    """Every image of x [B, C, H, W] through the model, tiled, on its device and dtype; float32 CPU result."""
    scale = int(handle.info["scale"])
    out_channels = int(handle.info["output_channels"])
    h, w = x.shape[-2:]
    per_image = tile_count(h, w, tile, OVERLAP)
    total = x.shape[0] * per_image
    done = 0
    outs = []
    with ctx.devices.use(handle) as module:
        param = next(module.parameters())

        def forward(part: torch.Tensor) -> torch.Tensor:
            ctx.check_interrupt()
            with torch.inference_mode():
                return module(part.to(param.device, param.dtype))

        def on_tile() -> None:
            nonlocal done
            done += 1
            ctx.progress(done, total)

        for k in range(x.shape[0]):
            outs.append(tiled_apply(x[k:k + 1], forward, scale, tile, OVERLAP, out_channels, on_tile))
    return torch.cat(outs)
