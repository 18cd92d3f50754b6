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
from .server_app import App, PromptQueueView
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
        self.app = App()  # routes and static folders packs add to ComfyUI's aiohttp app
        self.prompt_queue = PromptQueueView()
        self.on_prompt_handlers = []  # ComfyUI's: each gets the /prompt request's JSON and returns it (changed)

    @property
    def client_id(self):
        return runtime.last_client_id()

    @property
    def loop(self):
        return self.hub.loop if self.hub is not None else None

    def send_sync(self, event, data, sid=None) -> None:
        if not isinstance(event, str):
            self._send_binary(event, data)
            return
        current = runtime.running()
        if current is not None:  # as the running node's event: it reaches the server from a worker process too
            self.last_node_id = current.node_id
            self.last_prompt_id = current.ctx.job_id
            current.ctx.message(event, data, sid)
        elif self.hub is not None:  # outside a node run (a pack's route handler): straight to the clients
            self.hub.post(event, dict(data) if isinstance(data, dict) else data, client_id=sid)

    def _send_binary(self, event, data) -> None:
        """ComfyUI's binary events: preview images become the running node's preview (our own binary
        frame); the others are dropped with a warning."""
        preview = binary_preview(event, data)
        current = runtime.running()
        if preview is None or current is None:
            log.warning("a pack sent binary websocket event %r%s; nodegraph's ComfyUI layer relays only preview "
                        "images sent while a node runs, so it is dropped", event,
                        "" if current is None else " (not a preview image)")
            return
        image, image_format, max_size = preview
        current.ctx.preview(image, image_format, max_size)

    async def send(self, event, data, sid=None) -> None:
        self.send_sync(event, data, sid)

    async def send_json(self, event, data, sid=None) -> None:
        self.send_sync(event, data, sid)

    def add_on_prompt_handler(self, handler) -> None:
        self.on_prompt_handlers.append(handler)

    def trigger_on_prompt(self, json_data):
        """The /prompt request's JSON through every pack handler, in order, before it is read; a handler that
        raises is logged and skipped, as ComfyUI's server does (the request goes on with the JSON as it was)."""
        for handler in self.on_prompt_handlers:
            try:
                json_data = handler(json_data)
            except Exception:  # noqa: BLE001 - a pack's handler must not fail the request (ComfyUI logs it)
                log.warning("an on_prompt handler of a ComfyUI pack failed", exc_info=True)
        return json_data

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _instance_missing(f"PromptServer.instance.{name}")


def trigger_on_prompt(json_data):
    """What the server's /prompt route calls with the request's JSON (unchanged when no pack added a handler)."""
    server = getattr(PromptServer, "instance", None)
    return json_data if server is None else server.trigger_on_prompt(json_data)


def binary_preview(event, data):
    """(PIL image, format, max_size) from ComfyUI's preview events, else None. UNENCODED_PREVIEW_IMAGE
    carries (format, image, max_size); PREVIEW_IMAGE_WITH_METADATA that tuple and a metadata dict;
    PREVIEW_IMAGE bytes: a 4-byte big-endian type (1 JPEG, 2 PNG) and the encoded image."""
    from PIL import Image

    if event == BinaryEventTypes.PREVIEW_IMAGE_WITH_METADATA and isinstance(data, (tuple, list)) and data:
        event, data = BinaryEventTypes.UNENCODED_PREVIEW_IMAGE, data[0]
    if event == BinaryEventTypes.UNENCODED_PREVIEW_IMAGE and isinstance(data, (tuple, list)) and len(data) >= 2:
        image_format, image = data[0], data[1]
        max_size = data[2] if len(data) > 2 else None
        return (image, str(image_format).upper(), max_size) if isinstance(image, Image.Image) else None
    if event == BinaryEventTypes.PREVIEW_IMAGE and isinstance(data, (bytes, bytearray)) and len(data) > 4:
        import io

        kind = int.from_bytes(data[:4], "big")
        try:
            image = Image.open(io.BytesIO(bytes(data[4:])))
            image.load()
        except Exception:
            return None  # a pack's own header layout: not an image after the type
        return image, "JPEG" if kind == 1 else "PNG", None
    return None


def unsupported_message(name: str) -> str:
    from .surface import Miss

    return Miss(runtime.calling_pack(3), "server", f"PromptServer.instance.{name}").message()


_module_missing = unsupported(__name__)


def _instance_missing(name: str):
    return _module_missing(name)


def _aiohttp_web():
    try:
        from aiohttp import web
    except ImportError:
        from . import aiohttp_web as web
    return web


web = _aiohttp_web()  # ComfyUI's server.py imports aiohttp's web; packs use it as server.web
PromptServer()
__getattr__ = _module_missing
