"""Event delivery to websocket clients, scoped per client.

The worker thread calls `EventHub.post(...)`; the hub hops onto the asyncio loop with
loop.call_soon_threadsafe and queues the message on every connection that should see it:

- a job's events go to the connections of the client that submitted it (a job submitted
  without a client id is broadcast, as ComfyUI does);
- status (queue size, paused) goes to everyone.

Two socket flavours share the hub:
- native (/v1/ws): text {"type", "data"}; previews are binary msgpack
  {"type": "preview", "prompt_id", "node", "image": bytes, "image_type": "image/png" | "image/jpeg"};
- comfy (/ws): ComfyUI's messages (comfy_protocol.py): status data is {"status": {"exec_info":
  {"queue_remaining"}}}; progress_state messages; previews as ComfyUI frames, with metadata
  (event 4) for a client that announced supports_preview_metadata in its feature_flags message.

A message may be for one flavour only (`only`): progress_state and feature_flags are ComfyUI's.

Status changes are coalesced: a burst of submissions sends one status (the latest) to each
client, not one per change. Each connection has its own outgoing queue drained by its own task, so a slow client never
blocks the others; when a client's backlog grows, previews are dropped for it first.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Callable

import msgpack
from starlette.websockets import WebSocket

from . import comfy_protocol

log = logging.getLogger("nodegraph.server")

NATIVE, COMFY = "native", "comfy"
STATUS_DELAY = 0.02  # status changes within this many seconds go out as one message
PREVIEW_BACKLOG = 256  # drop previews for a client this far behind (a burst of one run fits: SaveImageWebsocket
# sends its results as preview frames, which a busy loop must not drop)
MAX_BACKLOG = 10_000  # close a client that stops reading altogether


@dataclass
class Message:
    """One event; encoded lazily, once per kind of socket (flavour, plus ComfyUI's preview variant).
    A preview's bytes are in `preview`, its mime type in data["image_type"] (PNG when absent)."""

    event: str
    data: dict
    client_id: str | None  # None: everyone
    preview: bytes | None = None
    only: str | None = None  # a flavour: the message is not sent to the other one
    _encoded: dict = field(default_factory=dict)

    def encoded(self, flavour: str, preview_metadata: bool = False) -> str | bytes | None:
        """The frame for one kind of socket; None: not for it."""
        if self.only is not None and self.only != flavour:
            return None
        key = (flavour, preview_metadata and self.preview is not None)
        if key not in self._encoded:
            if flavour == NATIVE:
                self._encoded[key] = _encode_native(self)
            else:
                self._encoded[key] = comfy_protocol.encode(self.event, self.data, self.preview, preview_metadata)
        return self._encoded[key]


def _json(event: str, data: dict) -> str:
    return json.dumps({"type": event, "data": data}, default=str, separators=(",", ":"))


def _encode_native(msg: Message) -> str | bytes:
    if msg.preview is not None:
        return msgpack.packb({"type": "preview", "prompt_id": msg.data.get("prompt_id"),
                              "node": msg.data.get("node"), "image": msg.preview,
                              "image_type": msg.data.get("image_type", comfy_protocol.PNG_MIME)})
    return _json(msg.event, msg.data)


class Connection:
    def __init__(self, ws: WebSocket, client_id: str, flavour: str) -> None:
        self.ws = ws
        self.client_id = client_id
        self.flavour = flavour
        self.outbox: asyncio.Queue[Message | None] = asyncio.Queue()
        self.dropped_previews = 0
        self.feature_flags: dict = {}  # what a ComfyUI client announced in its first message

    @property
    def preview_metadata(self) -> bool:
        return self.feature_flags.get("supports_preview_metadata") is True  # ComfyUI: `is True`

    def offer(self, msg: Message) -> None:
        if msg.only is not None and msg.only != self.flavour:
            return
        backlog = self.outbox.qsize()
        if msg.preview is not None and backlog > PREVIEW_BACKLOG:
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
            payload = msg.encoded(self.flavour, self.preview_metadata)
            if payload is None:
                continue
            if isinstance(payload, bytes):
                await self.ws.send_bytes(payload)
            else:
                await self.ws.send_text(payload)


class EventHub:
    def __init__(self, status: Callable[[], dict] | None = None) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.connections: dict[str, set[Connection]] = {}
        self.status = status  # the current status data, read when a status goes out
        self._status_due: asyncio.TimerHandle | None = None
        self.progress = comfy_protocol.ProgressStates()  # ComfyUI's progress_state, per running prompt

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    # --- from any thread ----------------------------------------------------------------------
    def post(self, event: str, data: dict, client_id: str | None = None, preview: bytes | None = None,
             only: str | None = None) -> None:
        """Queue an event for delivery (to one flavour of websocket with `only`); safe to call from any
        thread (the worker's included). Events posted from one thread go out in the order they were posted."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        msg = Message(event, data, client_id, preview, only=only)
        try:
            loop.call_soon_threadsafe(self._dispatch, msg)
        except RuntimeError:  # the loop closed under us (shutdown)
            pass

    def post_status(self, now: bool = False) -> None:
        """The queue changed: send everyone the status; safe from any thread. Coalesced (soon, once
        for a burst) unless `now`: then it goes out in order with the events posted around it, as
        ComfyUI sends it when a job starts and ends."""
        loop = self.loop
        if loop is None or loop.is_closed() or self.status is None:
            return
        try:
            if now:  # read here, in order with this thread's events (the loop may get to it later)
                loop.call_soon_threadsafe(self._send_status, self.status())
            else:
                loop.call_soon_threadsafe(self._status_changed)
        except RuntimeError:
            pass
        except Exception:  # e.g. the store closed during shutdown
            log.exception("could not read the queue status")

    # --- on the loop --------------------------------------------------------------------------
    def _status_changed(self) -> None:
        if self._status_due is None:
            self._status_due = self.loop.call_later(STATUS_DELAY, self._send_status)

    def _send_status(self, data: dict | None = None) -> None:
        if self._status_due is not None:  # a coalesced one still due would carry the same news
            self._status_due.cancel()
            self._status_due = None
        if data is None:
            try:
                data = self.status()
            except Exception:  # e.g. the store closed during shutdown
                log.exception("could not read the queue status")
                return
        self._dispatch(Message("status", data, None))

    def _dispatch(self, msg: Message) -> None:
        before, after = self.progress.around(msg.event, msg.data, msg.client_id)
        for event, data in before:
            self._deliver(Message(event, data, msg.client_id, only=COMFY))
        self._deliver(msg)
        for event, data in after:
            self._deliver(Message(event, data, msg.client_id, only=COMFY))

    def _deliver(self, msg: Message) -> None:
        if msg.client_id is None:
            if msg.preview is not None:  # previews go to the client that asked, never to everyone
                return
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


async def serve_socket(hub: EventHub, ws: WebSocket, client_id: str, flavour: str, hello: dict,
                       features: dict | None = None) -> None:
    """Run one websocket connection: greet with `hello` (a status), then stream its events.
    ComfyUI's sockets (`features` given) answer the client's first message, when it is
    {"type": "feature_flags"}, with the server's flags, as ComfyUI's server.py does."""
    await ws.accept()
    conn = Connection(ws, client_id, flavour)
    hub.add(conn)
    conn.offer(Message("status", hello, client_id))
    if flavour == COMFY:  # a client reconnecting while its prompt runs hears which node (server.py)
        running = hub.progress.running_node_of(client_id)
        if running is not None:
            conn.offer(Message("executing", {"node": running}, client_id))
    sender = asyncio.create_task(conn.pump())
    receiver = asyncio.create_task(_read_incoming(ws, conn, features))
    try:
        await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.remove(conn)
        for task in (sender, receiver):
            task.cancel()
        await asyncio.gather(sender, receiver, return_exceptions=True)


async def _read_incoming(ws: WebSocket, conn: Connection, features: dict | None) -> None:
    """Read what the client sends: a ComfyUI client's first message may be its feature flags;
    everything else is ignored (ComfyUI's server ignores it too)."""
    first = True
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if not first or features is None or text is None:  # binary frames do not count (ComfyUI reads text)
            continue
        readable, flags = comfy_protocol.client_feature_flags(text)
        if not readable:  # not JSON: ComfyUI logs it and still waits for a first message
            continue
        first = False
        if flags is not None:
            conn.feature_flags = flags
            conn.offer(Message("feature_flags", dict(features), conn.client_id))
