"""ComfyUI's latent_preview: prepare_callback (step progress and previews of the running node, as our
KSampler reports them), get_previewer (x0 -> a preview image by the latent format's RGB factors), and the
previewer classes packs build themselves (Latent2RGBPreviewer, TAESDPreviewerImpl over a TAESD, whose
model nodegraph does not have: making one fails naming comfy.taesd.taesd.TAESD)."""
from __future__ import annotations

from .model_surface import service
from .surface import unsupported

MAX_PREVIEW_RESOLUTION = 512  # ComfyUI's --preview-size default


def prepare_callback(model, steps: int, x0_output_dict: dict | None = None):
    """callback(step, x0, x, total_steps); x0_output_dict["x0"] keeps the last x0."""
    return service().sampling.prepare_callback(model, steps, x0_output_dict)


class LatentPreviewer:
    """Previews by projecting x0 with the latent format's RGB factors (ComfyUI's Latent2RGBPreviewer)."""

    def __init__(self, latent_format) -> None:
        self.latent_format = latent_format

    def decode_latent_to_preview(self, x0):
        """ComfyUI's preview_to_image truncates to bytes (0.5 -> 127)."""
        from ..images import tensor_to_pil_truncated

        return tensor_to_pil_truncated(self.latent_format.to_rgb(x0[:1].float())[0].cpu())

    def decode_latent_to_preview_image(self, preview_format: str, x0):
        return preview_format, self.decode_latent_to_preview(x0), MAX_PREVIEW_RESOLUTION


def preview_to_image(latent_image, do_scale: bool = True):
    """[H, W, 3] -> PIL, from -1..1 (do_scale) or 0..1, truncated to bytes as ComfyUI's preview_to_image."""
    import torch
    from PIL import Image

    scaled = ((latent_image + 1.0) / 2.0) if do_scale else latent_image
    return Image.fromarray(scaled.clamp(0, 1).mul(0xFF).to(device="cpu", dtype=torch.uint8).numpy())


class Latent2RGBPreviewer:
    """ComfyUI's Latent2RGBPreviewer: the first x0 of the batch (first frame of a video latent) projected to
    RGB by the factors [channels][3] (and bias), then preview_to_image."""

    def __init__(self, latent_rgb_factors, latent_rgb_factors_bias=None, latent_rgb_factors_reshape=None) -> None:
        import torch

        self.latent_rgb_factors = torch.tensor(latent_rgb_factors, device="cpu").transpose(0, 1)
        self.latent_rgb_factors_bias = (None if latent_rgb_factors_bias is None
                                        else torch.tensor(latent_rgb_factors_bias, device="cpu"))
        self.latent_rgb_factors_reshape = latent_rgb_factors_reshape

    def decode_latent_to_preview(self, x0):
        import torch

        if self.latent_rgb_factors_reshape is not None:
            x0 = self.latent_rgb_factors_reshape(x0)
        x0 = x0[0, :, 0] if x0.ndim == 5 else x0[0]
        bias = None if self.latent_rgb_factors_bias is None else self.latent_rgb_factors_bias.to(x0)
        return preview_to_image(torch.nn.functional.linear(x0.movedim(0, -1), self.latent_rgb_factors.to(x0), bias))

    def decode_latent_to_preview_image(self, preview_format: str, x0):
        return "JPEG", self.decode_latent_to_preview(x0), MAX_PREVIEW_RESOLUTION


class TAESDPreviewerImpl(Latent2RGBPreviewer):
    """ComfyUI's previewer over a TAESD decoder (taesd.decode of the first x0, scaled from -1..1)."""

    def __init__(self, taesd) -> None:
        self.taesd = taesd

    def decode_latent_to_preview(self, x0):
        return preview_to_image(self.taesd.decode(x0[:1])[0].movedim(0, 2))


def __getattr__(name: str):
    if name == "TAESD":  # ComfyUI's decoder model class, re-exported here: ours fails naming itself when made
        import sys

        return sys.modules["comfy.taesd.taesd"].TAESD
    return _missing(name)


def get_previewer(device, latent_format) -> LatentPreviewer:
    return LatentPreviewer(latent_format)


_missing = unsupported(__name__)
