"""Model files: the one service through which packs find, fingerprint, read and cache weights.

    class UpscaleModelLoader:
        @classmethod
        def fingerprint(cls, env, model_name):          # the cache key follows the file
            return env.models.fingerprint("upscale_models", model_name)

        def run(self, ctx, model_name):                   # read safely once, shared across runs
            return ctx.models.load("upscale_models", model_name, build_upscaler)

`build(weights)` receives a `WeightsFile` (name, path, tensors, metadata) and returns the model,
usually a ModelHandle. A model that is a folder (diffusers) goes through `load_path`, whose builder
gets the path and reads each weights file with `read_weights`. Files are read without running pickled code: .safetensors/.sft through
safetensors, anything else through torch.load(weights_only=True).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")


class ModelFileError(ValueError):
    """A model file that cannot be read as weights; the message names the file."""


@dataclass
class WeightsFile:
    name: str  # as the workflow names it (relative to its model folder)
    path: Path
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str] = field(default_factory=dict)  # safetensors' header metadata


def read_weights(path: str | Path, name: str | None = None, *, wrappers: tuple[str, ...] = ("state_dict",),
                 prefixes: tuple[str, ...] = (), nested: bool = False) -> WeightsFile:
    """The tensors of a weights file on the CPU, without running pickled code.

    Training wrappers are opened: the first of `wrappers` that holds a dict, else the only entry of a
    one-entry dict whose value is a dict (as ComfyUI's comfy.utils.load_torch_file does). Entries that
    are not tensors are dropped, and a prefix of `prefixes` that every key carries is removed
    (DataParallel's "module.").

    nested=True is for files that are trees rather than state dicts (A1111 hypernetworks: {768: [{...},
    {...}], "activation_func": "relu", ...}): nested dicts and lists become dotted keys ("768.0.linear.0.weight")
    and top-level str/bool/int/float settings go into the metadata as strings."""
    path = Path(path)
    name = name or path.name
    if path.is_dir():
        raise ModelFileError(f"{name}: is a folder, not a model file")
    if not path.is_file():
        raise ModelFileError(f"{name}: no such file ({path})")
    metadata: dict[str, str] = {}
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                metadata = dict(f.metadata() or {})
                obj: Any = {key: f.get_tensor(key) for key in f.keys()}
        except Exception as exc:
            raise ModelFileError(f"{name}: not a readable safetensors file ({exc})") from exc
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            raise ModelFileError(
                f"{name}: cannot be read with torch.load(weights_only=True): the file is damaged, not a PyTorch "
                f"file, or holds pickled objects besides weights ({type(exc).__name__}: {first_line})") from exc
    if nested and isinstance(obj, dict):
        obj, settings = _flatten(obj)
        metadata = {**settings, **metadata}
    return WeightsFile(name, path, _unwrap(obj, name, wrappers, prefixes), metadata)


def _flatten(tree: dict) -> tuple[dict, dict[str, str]]:
    """(dotted-key tensors of a nested dict/list tree, its top-level scalar settings as strings)."""
    tensors: dict[str, Any] = {}
    settings = {str(k): str(v) for k, v in tree.items() if isinstance(v, (str, bool, int, float))}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, torch.Tensor):
            tensors[prefix] = value
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(f"{prefix}.{i}" if prefix else str(i), v)

    walk("", tree)
    return tensors, settings


def _unwrap(obj: Any, name: str, wrappers: tuple[str, ...], prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    if not isinstance(obj, dict):
        raise ModelFileError(f"{name}: expected a state dict of weights, the file holds a {type(obj).__name__}")
    for key in wrappers:
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    else:
        if len(obj) == 1 and isinstance(next(iter(obj.values())), dict):
            obj = next(iter(obj.values()))
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ModelFileError(f"{name}: the file contains no weight tensors")
    for prefix in prefixes:
        if all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix):]: v for k, v in tensors.items()}
    return tensors


def file_stamp(path: Path) -> tuple:
    """What makes a cached load stale: the resolved path, size and modification time (of every file,
    for a folder model)."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return (str(path.resolve()), tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


class ModelFiles:
    """Model files of an environment: found in its folders, cached by its device manager."""

    def __init__(self, folders, devices) -> None:
        self.folders = folders
        self.devices = devices

    def find(self, folder: str, name: str) -> Path:
        """The file's path; the error names the folders searched and the files found."""
        return self.folders.find(folder, name)

    def fingerprint(self, folder: str, name: str) -> str | None:
        """For node `fingerprint` hooks: changes when the file does. None when the file is missing
        (validation and the run report that)."""
        try:
            return repr(file_stamp(self.find(folder, name)))
        except (OSError, ValueError):
            return None

    def load(self, folder: str, name: str, build: Callable[[WeightsFile], Any], *,
             wrappers: tuple[str, ...] = ("state_dict",), prefixes: tuple[str, ...] = (), variant: Any = None,
             size: Callable[[Any], int] | None = None, nested: bool = False) -> Any:
        """Find `name` in the model folder kind `folder`, read it safely and `build` the model from it,
        once per file version: the result is cached by the device manager and shared across runs and
        workflows. `build` must depend on the file alone; anything else it uses goes in `variant`.
        `size` tells the cache the bytes of a result that holds no ModelHandle or module (raw tensors)."""
        path = self.find(folder, name)
        key = ("model-file", folder, file_stamp(path), _builder_name(build), wrappers, prefixes, variant, nested)
        return self.devices.load_cached(
            key, lambda: build(read_weights(path, name, wrappers=wrappers, prefixes=prefixes, nested=nested)), size)

    def load_path(self, folder: str, name: str, build: Callable[[Path], Any], *, variant: Any = None) -> Any:
        """`load` for a model that is more than one weights file (a diffusers folder: config files beside
        the weights): `build` receives the found path, file or folder, and reads its weights itself with
        `read_weights`; cached once per version of every file in it."""
        path = self.find(folder, name)
        key = ("model-path", folder, file_stamp(path), _builder_name(build), variant)
        return self.devices.load_cached(key, lambda: build(path))


def _builder_name(build: Callable) -> str:
    """Part of the cache key: two builders of the same file make different models."""
    return f"{getattr(build, '__module__', '')}.{getattr(build, '__qualname__', repr(build))}"
