"""What happens when a pack reaches past the supported surface.

Each stand-in module ends with `__getattr__ = unsupported(__name__)`: asking it for a name it does
not provide raises UnsupportedComfyFeature, an AttributeError (so `hasattr` and `getattr(m, x, d)`
keep working as packs expect) whose message names the pack, the module and the attribute. Every
miss is recorded, so an import that fails with Python's generic "cannot import name" can be
explained in the registry's report.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import runtime

HINT = "see the README's 'ComfyUI custom node packs' section for what is supported"


class UnsupportedComfyFeature(AttributeError):
    """A pack used a ComfyUI name that nodegraph's compatibility layer does not provide."""


@dataclass(frozen=True)
class Miss:
    pack: str | None
    module: str
    name: str

    def message(self) -> str:
        who = f"pack {self.pack!r}" if self.pack else "a ComfyUI pack"
        return (f"{who} uses {self.module}.{self.name}, which nodegraph's ComfyUI compatibility layer "
                f"does not provide ({HINT})")


misses: list[Miss] = []


def comfy_name(module_name: str) -> str:
    """nodegraph.comfy_compat.comfy.utils -> comfy.utils (the name packs import)."""
    from .install import ALIASES

    for alias, real in ALIASES.items():
        if real == module_name:
            return alias
    return module_name


def unsupported(module_name: str):
    """A module-level __getattr__ that explains the miss."""

    def __getattr__(name: str):
        if name.startswith("__") and name.endswith("__"):  # import machinery probes (__path__, __wrapped__ ...)
            raise AttributeError(name)
        miss = Miss(runtime.calling_pack(), comfy_name(module_name), name)
        if miss not in misses:
            misses.append(miss)
        raise UnsupportedComfyFeature(miss.message())

    return __getattr__


def explain_import_error(exc: BaseException, pack: str) -> str | None:
    """A clearer message for a pack import that failed on the compatibility layer's surface."""
    if isinstance(exc, UnsupportedComfyFeature):
        return str(exc)
    if isinstance(exc, ImportError):
        from .install import ALIASES, COMFY_PACKAGES

        module = comfy_name(getattr(exc, "name", None) or "")
        for miss in reversed(misses):
            if miss.pack in (pack, None) and miss.module == module:
                return miss.message()
        if isinstance(exc, ModuleNotFoundError) and module.split(".")[0] in COMFY_PACKAGES and module not in ALIASES:
            return (f"pack {pack!r} imports {module}, a ComfyUI module that nodegraph's ComfyUI compatibility "
                    f"layer does not provide ({HINT})")
    return None
