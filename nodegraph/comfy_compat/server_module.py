"""ComfyUI's `server` module: PromptServer.instance, its route table and its messages.

`PromptServer.instance` exists from the first import (packs decorate routes at import time); its
`routes` collect aiohttp-style handlers that nodegraph's server mounts on its app (routes.py).
`send_sync(event, data, sid)` goes to the websocket clients of the server that is running (to
client `sid`, or to everyone) with ComfyUI's {"type", "data"} shape: from a running node as the
node's "node_message" event, which reaches the server from its worker process over the pipe; from
elsewhere (a route handler in the server) straight to the server's hub; without a server (the CLI)
it goes nowhere. `client_id` is the running job's client, as ComfyUI sets it.
"""
from __future__ import annotations

import logging

from . import runtime
from .surface import unsupported

log = logging.getLogger("nodegraph.comfy_compat")


class BinaryEventTypes:
    PREVIEW_IMAGE = 1
    UNENCODED_PREVIEW_IMAGE = 2
    TEXT = 3
    PREVIEW_IMAGE_WITH_METADATA = 4


def _route_table():
    try:
        from aiohttp import web
    except ImportError:  # only our stand-in's names, when aiohttp itself is absent
        from . import aiohttp_web as web
    return web.RouteTableDef()


class PromptServer:
    instance: "PromptServer"

    def __init__(self) -> None:
        PromptServer.instance = self
        self.routes = _route_table()
        self.hub = None  # the running server's EventHub, once one mounts the routes
        self.last_node_id = None
        self.last_prompt_id = None
        self.supports = ["custom_nodes_from_web"]

    @property
    def client_id(self):
        return runtime.last_client_id()

    @property
    def loop(self):
        return self.hub.loop if self.hub is not None else None

    def send_sync(self, event, data, sid=None) -> None:
        if not isinstance(event, str):
            log.warning("a pack sent a binary websocket event (%r); nodegraph's ComfyUI layer does not relay "
                        "those, so it is dropped", event)
            return
        current = runtime.running()
        if current is not None:  # as the running node's event: it reaches the server from a worker process too
            self.last_node_id = current.node_id
            self.last_prompt_id = current.ctx.job_id
            current.ctx.message(event, data, sid)
        elif self.hub is not None:  # outside a node run (a pack's route handler): straight to the clients
            self.hub.post(event, dict(data) if isinstance(data, dict) else data, client_id=sid)

    async def send(self, event, data, sid=None) -> None:
        self.send_sync(event, data, sid)

    async def send_json(self, event, data, sid=None) -> None:
        self.send_sync(event, data, sid)

    def add_on_prompt_handler(self, handler) -> None:
        raise AttributeError(unsupported_message("add_on_prompt_handler"))

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _instance_missing(f"PromptServer.instance.{name}")


def unsupported_message(name: str) -> str:
    from .surface import Miss

    return Miss(runtime.calling_pack(3), "server", f"PromptServer.instance.{name}").message()


_module_missing = unsupported(__name__)


def _instance_missing(name: str):
    return _module_missing(name)


PromptServer()
__getattr__ = _module_missing
