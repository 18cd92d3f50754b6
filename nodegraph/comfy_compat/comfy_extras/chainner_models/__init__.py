"""ComfyUI's `comfy_extras.chainner_models` (deprecated there, still imported by older packs such as
WAS Node Suite and Comfyroll): only `model_loading`."""
from ...surface import unsupported

__getattr__ = unsupported(__name__)
