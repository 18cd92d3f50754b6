"""The state ComfyUI's module-level API needs, kept in one place.

ComfyUI's modules (folder_paths, comfy.utils, server.PromptServer ...) are process-wide by nature:
packs call `folder_paths.get_input_directory()` with no context at hand. So the compatibility layer
answers from the node that is running (a context variable the V1 adapter sets around every call),
else from the environment the server or CLI bound last, else from ComfyUI's defaults (folders under
the current directory). The registry that is loading packs is kept too, so that model folders a pack
registers at import time reach our own Folders (through Registry.model_folders).
"""
from __future__ import annotations

import contextlib
import contextvars
import sys
import threading
from dataclasses import dataclass
from typing import Any, Iterator

PLUGIN_PACKAGE = "nodegraph_plugins"  # the registry imports plugins as nodegraph_plugins.<name>


@dataclass
class Running:
    """The node a ComfyUI function is running for."""
    ctx: Any  # nodegraph.Context
    node_id: str
    pack: str


_running: contextvars.ContextVar[Running | None] = contextvars.ContextVar("comfy_running", default=None)
_env: contextvars.ContextVar[Any] = contextvars.ContextVar("comfy_env", default=None)
_lock = threading.Lock()
_state: dict[str, Any] = {"env": None, "registry": None, "loading_pack": None, "last_client_id": None}


def running() -> Running | None:
    return _running.get()


@contextlib.contextmanager
def node_running(ctx, pack: str) -> Iterator[Running]:
    token = _running.set(Running(ctx, ctx.node_id, pack))
    env_token = _env.set(ctx.env)
    if ctx.extra.get("client_id") is not None:
        _state["last_client_id"] = ctx.extra.get("client_id")
    try:
        yield _running.get()
    finally:
        _env.reset(env_token)
        _running.reset(token)


@contextlib.contextmanager
def using_env(env) -> Iterator[None]:
    """Answer folder_paths & co from `env` inside the block (e.g. while listing a node's choices)."""
    token = _env.set(env)
    try:
        yield
    finally:
        _env.reset(token)


def bind_env(env) -> None:
    """The environment answering outside any node run (the server's or the CLI's)."""
    with _lock:
        _state["env"] = env


def env() -> Any:
    return _env.get() or _state["env"]


def folders():
    """The Folders to answer from: the running node's, the bound environment's, or ComfyUI's defaults."""
    current = env()
    if current is not None:
        return current.folders
    if _state.get("default_folders") is None:
        from ..folders import Folders

        _state["default_folders"] = Folders(".")
    return _state["default_folders"]


@contextlib.contextmanager
def loading(registry, pack: str) -> Iterator[None]:
    """While a pack imports: the registry that collects what it declares (model folders)."""
    previous = _state["registry"], _state["loading_pack"]
    _state["registry"], _state["loading_pack"] = registry, pack
    try:
        yield
    finally:
        _state["registry"], _state["loading_pack"] = previous


def remember_registry(registry) -> None:
    _state["last_registry"] = registry


def loading_registry():
    return _state["registry"]


def current_registry():
    """The registry ComfyUI's NODE_CLASS_MAPPINGS reflects: the one loading packs, the bound
    environment's, else the last one that loaded packs."""
    current = env()
    return _state["registry"] or (current.registry if current is not None else None) or _state.get("last_registry")


def last_client_id() -> str | None:
    current = running()
    if current is not None:
        return current.ctx.extra.get("client_id")
    return _state["last_client_id"]


def pack_of_module(module_name: str | None) -> str | None:
    """nodegraph_plugins.<pack>.sub -> <pack>."""
    if module_name and module_name.startswith(PLUGIN_PACKAGE + "."):
        return module_name.split(".")[1]
    return None


def calling_pack(depth: int = 2) -> str | None:
    """The pack whose code is calling (walks the stack to the first frame of a plugin module)."""
    frame = sys._getframe(depth)
    while frame is not None:
        pack = pack_of_module(frame.f_globals.get("__name__"))
        if pack is not None:
            return pack
        frame = frame.f_back
    current = running()
    if current is not None:
        return current.pack
    return _state["loading_pack"]
