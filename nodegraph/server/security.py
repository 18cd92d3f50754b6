"""Request guards, as one ASGI middleware for HTTP and websockets alike.

- Token: when the server has one, every request and websocket must carry it — an
  `Authorization: Bearer <token>` header, a `?token=` query parameter, or the cookie set after
  a successful `?token=` request (so a browser that opened `/?token=...` can load the editor's
  assets). Compared in constant time.
- Cross-site requests: a browser page on another site may POST to a loopback server (browsers
  allow it). A request whose Origin is neither loopback nor the Host it was sent to is refused
  with 403. A loopback server without a token also requires a loopback Host header, which stops
  DNS-rebinding pages (evil.example resolving to 127.0.0.1).
- Body size: requests larger than the limit get 413, whether they declare a Content-Length or
  stream chunks.
"""
from __future__ import annotations

import hmac
import ipaddress
import json
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

COOKIE = "nodegraph_token"
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def is_loopback_host(host: str | None) -> bool:
    """Is this host name or address a loopback one (no DNS lookup)?"""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Guard:
    def __init__(self, app, token: str | None, loopback_only: bool, max_body_bytes: int) -> None:
        self.app = app
        self.token = token
        self.loopback_only = loopback_only  # the server listens on loopback only
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            status, message = refusal
            return await self._refuse(kind, send, status, message)
        if kind == "websocket":
            return await self.app(scope, receive, send)

        set_cookie = self.token is not None and self._query_token(scope) == self.token
        length = headers.get("content-length")
        if length is not None:
            try:
                if int(length) > self.max_body_bytes:
                    return await self._refuse(kind, send, 413, f"request body larger than {self.max_body_bytes} bytes")
            except ValueError:
                return await self._refuse(kind, send, 400, "bad Content-Length")
        # read the whole body first (it is bounded), so an oversized one is refused before the app runs
        chunks, received = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body_bytes:
                return await self._refuse(kind, send, 413, f"request body larger than {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay_receive():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        async def cookie_send(message):
            if message["type"] == "http.response.start" and set_cookie:
                cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                message = {**message, "headers": [*message.get("headers", []),
                                                   (b"set-cookie", cookie.encode("latin-1"))]}
            await send(message)

        await self.app(scope, replay_receive, cookie_send)

    # --- checks -------------------------------------------------------------------------------
    def _refusal(self, scope, headers: dict) -> tuple[int, str] | None:
        host = urlsplit("//" + headers.get("host", "")).hostname
        origin = headers.get("origin")
        if origin and origin != "null":
            origin_host = urlsplit(origin).hostname
            if not is_loopback_host(origin_host) and (origin_host or "") != (host or ""):
                return 403, f"cross-site request from {origin} refused"
        if self.token is None:
            if self.loopback_only and host is not None and not is_loopback_host(host):
                return 403, "this server only answers requests addressed to a loopback host"
            return None
        if not self._has_token(scope, headers):
            return 401, "a token is required: send 'Authorization: Bearer <token>' or ?token=<token>"
        return None

    def _has_token(self, scope, headers: dict) -> bool:
        candidates = []
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            candidates.append(auth[7:].strip())
        query = self._query_token(scope)
        if query is not None:
            candidates.append(query)
        if "cookie" in headers:
            cookie = SimpleCookie()
            try:
                cookie.load(headers["cookie"])
            except Exception:
                pass
            if COOKIE in cookie:
                candidates.append(cookie[COOKIE].value)
        expected = self.token.encode()
        return any(hmac.compare_digest(c.encode("utf-8", "replace"), expected) for c in candidates)

    @staticmethod
    def _query_token(scope) -> str | None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        values = query.get("token")
        return values[0] if values else None

    @staticmethod
    async def _refuse(kind: str, send, status: int, message: str) -> None:
        if kind == "websocket":
            # closing before accepting makes the server answer the handshake with HTTP 403
            await send({"type": "websocket.close", "code": 1008, "reason": message[:100]})
            return
        body = json.dumps({"detail": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
