"""Putting ComfyUI's module names into sys.modules, only once a ComfyUI pack is found.

- folder_paths, node_helpers, server, comfy, comfy.utils, comfy.model_management, comfy.samplers,
  comfy.sample, comfy.sd, comfy.model_patcher, comfy.k_diffusion.sampling, latent_preview,
  comfy_api.latest (the V3 contract): our modules under ComfyUI's names (ALIASES);
- modules of ComfyUI that packs import at module level but nodegraph does not provide yet
  (PENDING: comfy.model_base, comfy.ops ...): importable, and every name asked of
  them raises UnsupportedComfyFeature naming the pack, so a pack that only uses them in some nodes
  still loads and its other nodes work;
- `server`: ours, unless a module of that name is already imported (e.g. a package called server on
  the path); then PromptServer and BinaryEventTypes are added to it instead;
- `nodes`: our built-in packs' package has that name too. It stays ours; ComfyUI's names
  (MAX_RESOLUTION, NODE_CLASS_MAPPINGS, the core node classes ...) are grafted onto it as a
  module __getattr__ (nodes_module.py). Submodules of our package win over ComfyUI names;
- while a pack imports: torchvision and aiohttp stand-ins when the real ones cannot be imported
  (removed afterwards, so other libraries still see them missing).
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import types
from pathlib import Path

from .surface import unsupported

ALIASES = {
    "folder_paths": "nodegraph.comfy_compat.folder_paths",
    "node_helpers": "nodegraph.comfy_compat.node_helpers",
    "server": "nodegraph.comfy_compat.server_module",
    "comfy": "nodegraph.comfy_compat.comfy",
    "comfy.utils": "nodegraph.comfy_compat.comfy.utils",
    "comfy.model_management": "nodegraph.comfy_compat.comfy.model_management",
    "comfy.samplers": "nodegraph.comfy_compat.comfy.samplers",
    "comfy.sample": "nodegraph.comfy_compat.comfy.sample",
    "comfy.sd": "nodegraph.comfy_compat.comfy.sd",
    "comfy.model_patcher": "nodegraph.comfy_compat.comfy.model_patcher",
    "comfy.k_diffusion": "nodegraph.comfy_compat.comfy.k_diffusion",
    "comfy.k_diffusion.sampling": "nodegraph.comfy_compat.comfy.k_diffusion.sampling",
    "latent_preview": "nodegraph.comfy_compat.latent_preview",
    "comfy_api": "nodegraph.comfy_compat.comfy_api",
    "comfy_api.latest": "nodegraph.comfy_compat.comfy_api.latest",
    "comfy_execution": "nodegraph.comfy_compat.comfy_execution",
    "comfy_execution.graph": "nodegraph.comfy_compat.comfy_execution.graph",
    "comfy_execution.graph_utils": "nodegraph.comfy_compat.comfy_execution.graph_utils",
    # more of ComfyUI 0.8 that popular public packs import at module level (bench/comfy_packs_try.py)
    "comfy.comfy_types": "nodegraph.comfy_compat.comfy.comfy_types",
    "comfy.comfy_types.node_typing": "nodegraph.comfy_compat.comfy.comfy_types.node_typing",
    "comfy.k_diffusion.utils": "nodegraph.comfy_compat.comfy.k_diffusion.utils",
    "comfy.cli_args": "nodegraph.comfy_compat.comfy.cli_args",
    "comfy.patcher_extension": "nodegraph.comfy_compat.comfy.patcher_extension",
    "comfy.sampler_helpers": "nodegraph.comfy_compat.comfy.sampler_helpers",
    "comfy_extras": "nodegraph.comfy_compat.comfy_extras",
    "comfy_extras.chainner_models": "nodegraph.comfy_compat.comfy_extras.chainner_models",
    "comfy_extras.chainner_models.model_loading": "nodegraph.comfy_compat.comfy_extras.chainner_models.model_loading",
}
# ComfyUI modules a pack may import at module level that are not provided (yet): importable, every name explains itself
PENDING = ("comfy.model_base", "comfy.ops", "comfy.clip_vision", "comfy.controlnet", "comfy_extras",
           # more of ComfyUI 0.8's modules that popular public packs import at module level (bench/comfy_packs_try.py)
           "execution", "comfy.diffusers_convert", "comfy.latent_formats", "comfy.lora")
COMFY_PACKAGES = ("comfy", "comfy_extras", "comfy_execution", "comfy_api", "comfy_api_nodes", "latent_preview",
                  "folder_paths", "node_helpers", "server", "execution", "app", "nodes")

_installed = False


def install() -> None:
    """Make ComfyUI's modules importable (idempotent). A module of that name that exists already and
    is not ours (a real ComfyUI on the path) is left alone."""
    global _installed
    if _installed:
        return
    for alias, real in ALIASES.items():
        if alias not in sys.modules:
            sys.modules[alias] = importlib.import_module(real)
        elif alias == "server" and sys.modules[alias].__name__ != real:
            _graft_server(sys.modules[alias], importlib.import_module(real))
    for name in PENDING:
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__getattr__ = unsupported(name)
            module.__path__ = []  # a package, so the listed submodules under it import
            sys.modules[name] = module
            parent, _, child = name.rpartition(".")
            if parent:
                setattr(sys.modules[parent], child, module)
    if sys.modules["comfy_extras"].__name__ == ALIASES["comfy_extras"]:  # ComfyUI's nodes_* modules: our nodes
        from .comfy_extras import node_modules

        node_modules.install(sys.modules["comfy_extras"])
    for alias in ALIASES:  # submodules as attributes of their parents (comfy.samplers, comfy.k_diffusion.sampling)
        parent, _, child = alias.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, sys.modules[alias])
    sys.modules["comfy_api"].latest = sys.modules["comfy_api.latest"]
    if sys.modules["comfy"].__name__ == ALIASES["comfy"]:  # ComfyUI's model code (comfy.ldm.*)
        from .comfy import model_code

        model_code.install()
    _graft_nodes()
    _installed = True


def _graft_server(other: types.ModuleType, ours: types.ModuleType) -> None:
    """Another module already answers to `server` (a package of that name on the path): give it
    PromptServer and BinaryEventTypes rather than hiding it."""
    for name in ("PromptServer", "BinaryEventTypes"):
        if not hasattr(other, name):
            setattr(other, name, getattr(ours, name))


def _graft_nodes() -> None:
    from . import nodes_module

    try:
        ours = importlib.import_module("nodes")
    except ImportError:
        ours = None
    if ours is None or not hasattr(ours, "__path__"):  # no package of ours: ComfyUI's names are `nodes`
        sys.modules["nodes"] = nodes_module
        return
    folders = [Path(p) for p in ours.__path__]

    def __getattr__(name: str):
        if any((f / name).is_dir() or (f / f"{name}.py").is_file() for f in folders):
            raise AttributeError(name)  # one of our packs, not imported yet: let the import system do it
        return nodes_module.lookup(name)

    ours.__getattr__ = __getattr__


@contextlib.contextmanager
def stand_ins():
    """torchvision / aiohttp stand-ins while a pack imports, when the real ones cannot load."""
    from . import aiohttp_pkg, aiohttp_web, torchvision_stand_in

    added: dict[str, types.ModuleType] = {}
    if torchvision_stand_in.needed():
        added.update(torchvision_stand_in.build())
    if "aiohttp" not in sys.modules and importlib.util.find_spec("aiohttp") is None:
        added.update({"aiohttp": aiohttp_pkg, "aiohttp.web": aiohttp_web})
    for name, module in added.items():
        sys.modules.setdefault(name, module)
    try:
        yield
    finally:
        for name, module in added.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
