"""The parts of ComfyUI's PromptServer.instance that packs reach for beyond routes and send_sync.

- `app`: ComfyUI's aiohttp Application. Packs add routes and static folders to it at import time
  (`app.add_routes([web.static("/my_pack_js", folder)])`, `app.router.add_get(...)`), guarded by
  `app.router.frozen`; they are kept here and mounted on nodegraph's server with the pack routes.
- `prompt_queue`: ComfyUI's PromptQueue, seen from a running node: `currently_running` holds the
  node's own job in ComfyUI's tuple shape (number, prompt_id, prompt, extra_data,
  outputs_to_execute, sensitive) and `get_tasks_remaining()` counts it. Changing the queue from a
  node (`put`, `wipe_queue` ...) is not offered: those names raise the compatibility layer's
  error naming the pack.
"""
from __future__ import annotations

from .surface import unsupported

_queue_missing = unsupported("server.PromptServer.instance.prompt_queue")
_app_missing = unsupported("server.PromptServer.instance.app")


class _Route:
    def __init__(self, method: str, path: str, handler) -> None:
        self.method, self.path, self.handler = method.upper(), path, handler


class _Static:
    def __init__(self, prefix: str, path) -> None:
        self.prefix, self.path = prefix, path


class Router:
    frozen = False  # ComfyUI's is frozen once the server runs; packs load before ours mounts them

    def __init__(self, defs: list) -> None:
        self._defs = defs

    def add_route(self, method: str, path: str, handler, **kwargs):
        self._defs.append(_Route(method, path, handler))

    def add_get(self, path: str, handler, **kwargs):
        self.add_route("GET", path, handler)

    def add_post(self, path: str, handler, **kwargs):
        self.add_route("POST", path, handler)

    def add_put(self, path: str, handler, **kwargs):
        self.add_route("PUT", path, handler)

    def add_delete(self, path: str, handler, **kwargs):
        self.add_route("DELETE", path, handler)

    def add_static(self, prefix: str, path, **kwargs):
        self._defs.append(_Static(prefix, path))


class App:
    """What packs use of ComfyUI's aiohttp Application."""

    def __init__(self) -> None:
        self.route_defs: list = []  # mounted beside PromptServer.instance.routes
        self.router = Router(self.route_defs)

    def add_routes(self, defs) -> None:
        for definition in defs:
            if hasattr(definition, "prefix"):
                self.router.add_static(definition.prefix, definition.path)
            else:
                self.router.add_route(definition.method, definition.path, definition.handler)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _app_missing(name)


class PromptQueueView:
    """ComfyUI's PromptQueue as a running node sees it (read-only)."""

    @property
    def currently_running(self) -> dict:
        from . import runtime
        from .v1 import comfy_prompt

        current = runtime.running()
        if current is None:
            return {}
        ctx = current.ctx
        number = ctx.extra.get("number", 0)
        item = (number, ctx.job_id, comfy_prompt(ctx), dict(ctx.extra), list(ctx.extra.get("outputs_to_execute", [])), {})
        return {number: item}

    def get_tasks_remaining(self) -> int:
        return len(self.currently_running)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _queue_missing(name)
