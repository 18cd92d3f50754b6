"""The services a process shares: node registry, folders, device manager, output cache, model files.

One Environment is made per process (the CLI run, the server) and handed to the executor,
which hands it to nodes through their Context. No module-level singletons.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .cache import OutputCache
from .devices import DeviceManager
from .folders import Folders
from .limits import Limits
from .model_files import ModelFiles
from .registry import Registry, default_registry


@dataclass
class Environment:
    registry: Registry
    folders: Folders = field(default_factory=Folders)
    devices: DeviceManager = field(default_factory=DeviceManager)
    cache: OutputCache = field(default_factory=OutputCache)
    limits: Limits = field(default_factory=Limits)

    @property
    def models(self) -> ModelFiles:
        """Model files: find, fingerprint, read safely, cache (see model_files.py)."""
        return ModelFiles(self.folders, self.devices)

    def __post_init__(self) -> None:
        for kind, paths in self.registry.model_folders.items():
            for path in paths:
                self.folders.add(kind, path)
        for hook in self.registry.environment_hooks:  # e.g. ComfyUI packs' folder_paths answer from it
            hook(self)

    @classmethod
    def create(cls, base: str | Path = ".", plugins_dir: str | Path | None = "custom_nodes",
               models: str | Path | None = None, output: str | Path | None = None,
               input: str | Path | None = None, device: str | None = None,
               cache_bytes: int | None = None, vram_budget: int | None = None,
               limits: Limits | None = None, builtins: bool = True) -> "Environment":
        registry = default_registry(plugins_dir, builtins=builtins)
        return cls(registry=registry, folders=Folders(base, models=models, output=output, input=input),
                   devices=DeviceManager(device=device, vram_budget=vram_budget),
                   cache=OutputCache(max_bytes=cache_bytes) if cache_bytes else OutputCache(),
                   limits=limits or Limits())
