"""How to build, in another process, an Environment equal to one that exists here.

An Environment holds classes, modules and devices, none of which cross a process boundary. Its
recipe is plain data: which modules and plugin files registered its nodes (ComfyUI packs are
plugin files too: the child's registry hands them to comfy_compat again), its folders, device
settings and cache size. A worker process builds its own Environment from it, so the nodes it
runs are the ones the server validated against.
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("nodegraph.workers")

PLUGIN_PACKAGE = "nodegraph_plugins"  # where Registry.load_plugin puts a custom nodes folder's modules


@dataclass(frozen=True)
class EnvRecipe:
    node_names: tuple[str, ...]
    modules: tuple[str, ...]  # importable modules that registered nodes
    plugin_paths: tuple[str, ...]  # plugin files / package folders of a custom nodes folder
    folders: dict = field(default_factory=dict)  # models, output, input, temp, extra {kind: [paths]}
    device: str | None = None
    dtype: str | None = None
    vram_budget: int | None = None
    model_cache_bytes: int | None = None
    cache_bytes: int | None = None
    torch_threads: int | None = None  # the thread count changes float summation order: keep pixels equal
    limits: object = None  # nodegraph.limits.Limits (plain data): the worker's nodes honour the server's flags

    @classmethod
    def of(cls, env) -> "EnvRecipe":
        import torch

        modules, plugins = [], []
        pack_sources = {load.name: load.source for load in env.registry.loads}  # plugins folder: pack -> path
        for spec in env.registry.specs.values():
            name = spec.cls.__module__
            pack = getattr(spec.cls, "comfy_pack", None)  # a ComfyUI pack's class may be defined anywhere
            if pack in pack_sources:
                plugins.append(pack_sources[pack])
            elif name.split(".")[0] == PLUGIN_PACKAGE:
                top = sys.modules.get(".".join(name.split(".")[:2]))
                source = getattr(top, "__file__", None)
                if source is None:
                    raise ValueError(f"node {spec.name}: plugin module {name} has no file to load again")
                path = Path(source)
                plugins.append(str(path.parent if path.name == "__init__.py" else path))
            else:
                modules.append(name)
        folders = env.folders
        devices = env.devices
        return cls(node_names=tuple(sorted(env.registry.specs)), modules=tuple(dict.fromkeys(modules)),
                   plugin_paths=tuple(dict.fromkeys(plugins)),
                   folders={"models": str(folders.models), "output": str(folders.output),
                            "input": str(folders.input), "temp": str(folders.temp),
                            "extra": {k: [str(p) for p in v] for k, v in folders._extra.items()}},
                   device=str(devices.device), dtype=str(devices.dtype).removeprefix("torch."),
                   vram_budget=devices.vram_budget, model_cache_bytes=devices.model_cache_bytes,
                   cache_bytes=env.cache.max_bytes, torch_threads=torch.get_num_threads(),
                   limits=env.limits)

    def build(self):
        import torch

        from ..cache import OutputCache
        from ..devices import DeviceManager
        from ..environment import Environment
        from ..folders import Folders
        from ..registry import Registry

        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        registry = Registry()
        for module in self.modules:
            registry.import_module(module, f"module {module}")
        for path in self.plugin_paths:
            registry.load_plugin(path)
        wanted = set(self.node_names)
        missing = sorted(wanted - set(registry.specs))
        if missing:
            log.warning("the worker could not load node(s) %s: jobs using them fail", ", ".join(missing))
        registry.specs = {name: spec for name, spec in registry.specs.items() if name in wanted}
        f = self.folders
        folders = Folders(models=f.get("models"), output=f.get("output"), input=f.get("input"), temp=f.get("temp"))
        for kind, paths in (f.get("extra") or {}).items():
            for path in paths:
                folders.add(kind, path)
        devices = DeviceManager(device=self.device, dtype=getattr(torch, self.dtype) if self.dtype else None,
                                vram_budget=self.vram_budget, model_cache_bytes=self.model_cache_bytes)
        cache = OutputCache(max_bytes=self.cache_bytes) if self.cache_bytes else OutputCache()
        env = Environment(registry=registry, folders=folders, devices=devices, cache=cache)
        if self.limits is not None:
            env.limits = self.limits
        return env
