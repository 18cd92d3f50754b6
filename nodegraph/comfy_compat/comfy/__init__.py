"""ComfyUI's `comfy` package, as far as nodegraph provides it (utils, model_management, samplers, sample,
sd, model_patcher, k_diffusion.sampling).

Installed as `comfy` in sys.modules only while ComfyUI packs are loaded; its submodules are
registered under their ComfyUI names (`comfy.utils` ...) by nodegraph.comfy_compat.install.
"""
from ..surface import unsupported

__getattr__ = unsupported(__name__)
