"""ComfyUI's `comfy.comfy_types`: the type hints packs import (IO above all, whose members are the
socket type names packs put in INPUT_TYPES / RETURN_TYPES)."""
from ...surface import unsupported
from .node_typing import IO, CheckLazyMixin, ComfyNodeABC, FileLocator, InputTypeDict  # noqa: F401

__getattr__ = unsupported(__name__)
