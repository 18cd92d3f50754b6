"""ComfyUI's comfy.sd: the CLIP and VAE classes (the objects pack nodes receive), load_checkpoint_guess_config
and load_lora_for_models, from the diffusion pack (model_surface.py)."""
from __future__ import annotations

from ..model_surface import current_ctx, service
from ..surface import unsupported


def load_checkpoint_guess_config(ckpt_path, output_vae=True, output_clip=True, output_clipvision=False,
                                 embedding_directory=None, output_model=True, model_options=None,
                                 te_model_options=None) -> tuple:
    """(MODEL, CLIP, VAE, CLIP_VISION) of a checkpoint file; CLIP_VISION is None (ours load separately)."""
    return service().load_checkpoint(current_ctx(), str(ckpt_path), output_vae=output_vae, output_clip=output_clip,
                                     output_model=output_model)


def load_lora_for_models(model, clip, lora: dict, strength_model: float, strength_clip: float) -> tuple:
    """Clones of model and clip with a LoRA state dict (comfy.utils.load_torch_file) applied as patches."""
    return service().load_lora_for_models(model, clip, lora, strength_model, strength_clip)


_missing = unsupported(__name__)


def __getattr__(name: str):
    if name in ("CLIP", "VAE"):  # isinstance checks and annotations
        return getattr(service(), name)
    return _missing(name)
