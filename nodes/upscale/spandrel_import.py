"""Import spandrel whether or not torchvision is installed.

spandrel (the library that recognises and builds upscaler architectures) imports
`torchvision.transforms.functional` in two of its ~45 architectures, LaMa (inpainting: `rotate`,
`InterpolationMode`) and RestoreFormer (face restoration: `normalize`), and its package import
pulls in every architecture. nodegraph does not install torchvision: the PyPI wheel is built for
a CUDA torch and breaks `import transformers` next to our CPU torch.

So when torchvision is absent, a minimal stand-in is placed in sys.modules only while spandrel is
imported, and every stand-in entry is removed right after, so transformers, diffusers and anyone
else asking for torchvision later still see that it is missing. The stand-in is honest:
`normalize` is implemented; `rotate` and anything else raise an error saying that this
architecture needs torchvision. When the real torchvision is installed, it is used unchanged.
"""
from __future__ import annotations

import enum
import importlib
import importlib.util
import sys
import threading
import types
from typing import Any, Sequence

import torch

STAND_IN_MARK = "__nodegraph_stand_in__"  # set on every stand-in module
_lock = threading.Lock()


class TorchvisionMissing(RuntimeError):
    """An architecture called into torchvision, which is not installed."""


class InterpolationMode(enum.Enum):
    """The names and values of torchvision.transforms.InterpolationMode."""

    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def normalize(tensor: torch.Tensor, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> torch.Tensor:
    """(tensor - mean) / std per channel of a [..., C, H, W] float tensor (torchvision's semantics)."""
    if not torch.is_floating_point(tensor):
        raise TypeError(f"normalize expects a float tensor, got {tensor.dtype}")
    if tensor.ndim < 3:
        raise ValueError(f"normalize expects a tensor of shape [..., C, H, W], got {tuple(tensor.shape)}")
    mean_t = torch.as_tensor(mean, dtype=tensor.dtype, device=tensor.device).reshape(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=tensor.dtype, device=tensor.device).reshape(-1, 1, 1)
    if (std_t == 0).any():
        raise ValueError(f"std {list(std)} contains a zero, which would divide by zero")
    out = tensor if inplace else tensor.clone()
    return out.sub_(mean_t).div_(std_t)


def _needs_torchvision(name: str):
    def missing(*args: Any, **kwargs: Any):
        raise TorchvisionMissing(
            f"torchvision.transforms.functional.{name} is not available: torchvision is not installed "
            "(nodegraph imports spandrel without it). This model architecture needs torchvision; "
            "install a torchvision build that matches your torch to use it.")

    missing.__name__ = name
    return missing


def _functional_module() -> types.ModuleType:
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.InterpolationMode = InterpolationMode
    functional.normalize = normalize

    def __getattr__(name: str):  # any other function: an honest error when called
        if name.startswith("__"):
            raise AttributeError(name)
        return _needs_torchvision(name)

    functional.__getattr__ = __getattr__
    return functional


def _stand_in_modules() -> dict[str, types.ModuleType]:
    root = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    functional = _functional_module()
    root.transforms = transforms
    transforms.functional = functional
    transforms.InterpolationMode = InterpolationMode
    modules = {"torchvision": root, "torchvision.transforms": transforms,
               "torchvision.transforms.functional": functional}
    for module in modules.values():
        setattr(module, STAND_IN_MARK, True)
    return modules


def torchvision_installed() -> bool:
    real = sys.modules.get("torchvision")
    if real is not None and not getattr(real, STAND_IN_MARK, False):
        return True
    return importlib.util.find_spec("torchvision") is not None


def import_spandrel() -> types.ModuleType:
    """The spandrel module, imported with a temporary torchvision stand-in if torchvision is absent."""
    if "spandrel" in sys.modules:
        return sys.modules["spandrel"]
    with _lock:
        if "spandrel" in sys.modules:
            return sys.modules["spandrel"]
        if torchvision_installed():
            return importlib.import_module("spandrel")
        stand_ins = _stand_in_modules()
        sys.modules.update(stand_ins)
        try:
            return importlib.import_module("spandrel")
        finally:
            for name, module in stand_ins.items():
                if sys.modules.get(name) is module:  # never remove something else put there meanwhile
                    del sys.modules[name]
