"""Event delivery to websocket clients, scoped per client.

The worker thread calls `EventHub.post(...)`; the hub hops onto the asyncio loop with
loop.call_soon_threadsafe and queues the message on every connection that should see it:

- a job's events go to the connections of the client that submitted it (a job submitted
  without a client id is broadcast, as ComfyUI does);
- status (queue size, paused) goes to everyone.

Two socket flavours share the hub:
- native (/v1/ws): text {"type", "data"}; previews are binary msgpack
  {"type": "preview", "prompt_id", "node", "image": PNG bytes};
- comfy (/ws): ComfyUI's messages; status data is {"status": {"exec_info": {"queue_remaining"}}};
  previews are binary: 4-byte big-endian event type 1, 4-byte image type 2 (PNG), PNG bytes.

Status changes are coalesced: a burst of submissions sends one status (the latest) to each
client, not one per change. Each connection has its own outgoing queue drained by its own task, so a slow client never
blocks the others; when a client's backlog grows, previews are dropped for it first.
"""
from __future__ import annotations

import asyncio
import json
import logging
import struct
from dataclasses import dataclass
from typing import Any, Callable

import msgpack
from starlette.websockets import WebSocket

log = logging.getLogger("nodegraph.server")

NATIVE, COMFY = "native", "comfy"
STATUS_DELAY = 0.02  # status changes within this many seconds go out as one message
PREVIEW_BACKLOG = 16  # drop previews for a client with more messages than this waiting
MAX_BACKLOG = 10_000  # close a client that stops reading altogether
COMFY_PREVIEW_IMAGE, COMFY_IMAGE_PNG = 1, 2


@dataclass
class Message:
    """One event; encoded lazily, once per socket flavour."""

    event: str
    data: dict
    client_id: str | None  # None: everyone
    preview_png: bytes | None = None
    _native: Any = None
    _comfy: Any = None

    def encoded(self, flavour: str) -> str | bytes:
        if flavour == NATIVE:
            if self._native is None:
                self._native = _encode_native(self)
            return self._native
        if self._comfy is None:
            self._comfy = _encode_comfy(self)
        return self._comfy


def _json(event: str, data: dict) -> str:
    return json.dumps({"type": event, "data": data}, default=str, separators=(",", ":"))


def _encode_native(msg: Message) -> str | bytes:
    if msg.preview_png is not None:
        return msgpack.packb({"type": "preview", "prompt_id": msg.data.get("prompt_id"),
                              "node": msg.data.get("node"), "image": msg.preview_png})
    return _json(msg.event, msg.data)


def _encode_comfy(msg: Message) -> str | bytes:
    if msg.preview_png is not None:
        return struct.pack(">II", COMFY_PREVIEW_IMAGE, COMFY_IMAGE_PNG) + msg.preview_png
    if msg.event == "status":
        data = {"status": {"exec_info": {"queue_remaining": msg.data.get("queue_remaining", 0)}}}
        if "sid" in msg.data:
            data["sid"] = msg.data["sid"]
        return _json("status", data)
    return _json(msg.event, msg.data)


class Connection:
    def __init__(self, ws: WebSocket, client_id: str, flavour: str) -> None:
        self.ws = ws
        self.client_id = client_id
        self.flavour = flavour
        self.outbox: asyncio.Queue[Message | None] = asyncio.Queue()
        self.dropped_previews = 0

    def offer(self, msg: Message) -> None:
        backlog = self.outbox.qsize()
        if msg.preview_png is not None and backlog > PREVIEW_BACKLOG:
            self.dropped_previews += 1
            return
        if backlog > MAX_BACKLOG:
            log.warning("websocket client %s is not reading; closing it", self.client_id)
            self.outbox.put_nowait(None)
            return
        self.outbox.put_nowait(msg)

    async def pump(self) -> None:
        """Send queued messages until told to stop (None) or the socket fails."""
        while True:
            msg = await self.outbox.get()
            if msg is None:
                await self.ws.close(code=1008)
                return
            payload = msg.encoded(self.flavour)
            if isinstance(payload, bytes):
                await self.ws.send_bytes(payload)
            else:
                await self.ws.send_text(payload)


class EventHub:
    def __init__(self, status: Callable[[], dict] | None = None) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.connections: dict[str, set[Connection]] = {}
        self.status = status  # the current status data, read when a status goes out
        self._status_due = False

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    # --- from any thread ----------------------------------------------------------------------
    def post(self, event: str, data: dict, client_id: str | None = None, preview_png: bytes | None = None) -> None:
        """Queue an event for delivery; safe to call from any thread (the worker's included)."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        msg = Message(event, data, client_id, preview_png)
        try:
            loop.call_soon_threadsafe(self._dispatch, msg)
        except RuntimeError:  # the loop closed under us (shutdown)
            pass

    def post_status(self) -> None:
        """The queue changed: send everyone the status soon (coalesced); safe from any thread."""
        loop = self.loop
        if loop is None or loop.is_closed() or self.status is None:
            return
        try:
            loop.call_soon_threadsafe(self._status_changed)
        except RuntimeError:
            pass

    # --- on the loop --------------------------------------------------------------------------
    def _status_changed(self) -> None:
        if not self._status_due:
            self._status_due = True
            self.loop.call_later(STATUS_DELAY, self._send_status)

    def _send_status(self) -> None:
        self._status_due = False
        try:
            data = self.status()
        except Exception:  # e.g. the store closed during shutdown
            log.exception("could not read the queue status")
            return
        self._dispatch(Message("status", data, None))

    def _dispatch(self, msg: Message) -> None:
        if msg.client_id is None:
            targets = [c for conns in self.connections.values() for c in conns]
        else:
            targets = list(self.connections.get(msg.client_id, ()))
        for conn in targets:
            conn.offer(msg)

    def add(self, conn: Connection) -> None:
        self.connections.setdefault(conn.client_id, set()).add(conn)

    def remove(self, conn: Connection) -> None:
        conns = self.connections.get(conn.client_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.connections[conn.client_id]

    def count(self) -> int:
        return sum(len(c) for c in self.connections.values())


async def serve_socket(hub: EventHub, ws: WebSocket, client_id: str, flavour: str, hello: dict) -> None:
    """Run one websocket connection: greet with `hello` (a status), then stream its events."""
    await ws.accept()
    conn = Connection(ws, client_id, flavour)
    hub.add(conn)
    conn.offer(Message("status", hello, client_id))
    sender = asyncio.create_task(conn.pump())
    receiver = asyncio.create_task(_drain_incoming(ws))
    try:
        await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.remove(conn)
        for task in (sender, receiver):
            task.cancel()
        await asyncio.gather(sender, receiver, return_exceptions=True)


async def _drain_incoming(ws: WebSocket) -> None:
    """Clients may send messages (ComfyUI's frontend sends feature flags); read and ignore them."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
