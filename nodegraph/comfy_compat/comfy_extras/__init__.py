"""ComfyUI's `comfy_extras` package: only the deprecated `chainner_models.model_loading` is provided
(its other modules are ComfyUI's own nodes)."""
from ..surface import unsupported

__getattr__ = unsupported(__name__)
