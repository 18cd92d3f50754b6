"""ComfyUI's latent_preview: prepare_callback (step progress and previews of the running node, as our
KSampler reports them) and get_previewer (x0 -> a preview image by the latent format's RGB factors)."""
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


def get_previewer(device, latent_format) -> LatentPreviewer:
    return LatentPreviewer(latent_format)


__getattr__ = unsupported(__name__)
