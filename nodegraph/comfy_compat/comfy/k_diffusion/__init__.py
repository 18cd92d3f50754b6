"""ComfyUI's comfy.k_diffusion package (its `sampling` module is what packs use)."""
from ...surface import unsupported

__getattr__ = unsupported(__name__)
