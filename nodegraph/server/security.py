"""Request guards, as one ASGI middleware for HTTP and websockets alike.

The model is the browser's: a page may send requests to any server its user can reach (a
loopback one included) and the server must tell a page's request from its own editor's or a
program's.

- Cross-site: a request is cross-site when its Origin header is `null` (sandboxed iframes,
  `data:` pages) or names another origin than the one it was sent to (its Host), unless that
  origin was allowed with `allowed_origins`. For state-changing requests and websocket
  handshakes, `Sec-Fetch-Site: cross-site | same-site` counts too (a browser that left Origin
  out). A cross-site request is refused with 403 unless it carries the token explicitly (an
  `Authorization: Bearer` header; for a websocket, `?token=` too). A loopback server without
  a token also wants a loopback Host, which stops DNS-rebinding pages (evil.example resolving
  to 127.0.0.1). Requests without Origin or Sec-Fetch-* headers come from programs, not
  pages: on a loopback server without a token they pass, as ComfyUI's scripts expect.
- Content type: a state-changing request with a body must be one a page cannot send without
  a CORS preflight (which this server never grants) and still have it parse: JSON, multipart
  on the upload routes (and only there), or form-encoded / no type, which is what urllib and
  requests send by default and which an HTML form cannot fill with JSON (it percent-encodes
  `{` and `"`). text/plain, the one a form can fill with JSON, gets 415. A request carrying
  ComfyUI's `Comfy-User` header is preflighted too, so its frontend's text bodies pass.
- Token: when the server has one, every request wants it: the `Authorization: Bearer` header,
  or the session cookie that `POST /v1/login` sets (same-site requests only, and the cookie
  holds a value derived from the token, not the token). `?token=` in the query is accepted
  only on the websocket handshake, where browsers cannot set headers; anywhere else a query
  string ends up in logs and browser history. A browser opening a page without it gets a
  small login form. Compared in constant time.
- Body size: requests larger than the limit get 413, whether they declare a Content-Length or
  stream chunks.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import re
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

COOKIE = "nodegraph_session"
LOGIN_PATH = "/v1/login"
MIN_TOKEN_LENGTH = 16
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
UPLOAD_SUFFIXES = ("/upload/image", "/upload/mask")
DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


class TokenError(SystemExit):
    """A token the server refuses to start with."""


def check_token(token: str | None) -> str | None:
    """The token to use, or None for none; a blank or short one stops the server with a clear message."""
    if token is None:
        return None
    if not token.strip():
        raise TokenError("refusing a blank token: pass a random string of at least "
                         f"{MIN_TOKEN_LENGTH} characters (e.g. python -c 'import secrets; print(secrets.token_urlsafe())')")
    if len(token) < MIN_TOKEN_LENGTH:
        raise TokenError(f"refusing a token of {len(token)} characters: it must have at least {MIN_TOKEN_LENGTH} "
                         "(e.g. python -c 'import secrets; print(secrets.token_urlsafe())')")
    return token


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


def _netloc(value: str, is_host: bool = False) -> str | None:
    """host[:port] in lower case without a default port (an Origin's scheme's; 80 or 443 for a Host
    header, whose scheme is unknown behind a proxy); None if unreadable."""
    try:
        parts = urlsplit("//" + value if is_host else value)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    host = f"[{host}]" if ":" in host else host
    if port is None or (is_host and port in (80, 443)) or str(port) == DEFAULT_PORTS.get(parts.scheme):
        return host
    return f"{host}:{port}"


def normalise_origin(origin: str) -> str:
    """An origin as compared here: host[:port] without a default port (so https://x and Host x match:
    a TLS proxy in front of the server)."""
    netloc = _netloc(origin.strip())
    if netloc is None:
        raise ValueError(f"not an origin: {origin!r} (expected scheme://host[:port])")
    return netloc


def session_value(token: str) -> str:
    """What the session cookie holds: derived from the token, so a leaked cookie is not the token."""
    return hmac.new(token.encode(), b"nodegraph session", hashlib.sha256).hexdigest()


def redact(text: str) -> str:
    """A URL or log line with token values hidden."""
    return _TOKEN_IN_QUERY.sub(r"\1***", text)


_TOKEN_IN_QUERY = re.compile(r"((?:^|[?&\s])token=)[^&\s\"']*", re.IGNORECASE)


class RedactTokens(logging.Filter):
    """Hides `token=` values in log records (uvicorn logs request paths with their query)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "token=" in record.msg.lower():
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) and "token=" in a.lower() else a for a in record.args)
        return True


def redact_server_logs() -> None:
    """Install RedactTokens on uvicorn's loggers (access lines and websocket handshakes)."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


def redact_argv(argv: list[str]) -> list[str]:
    """A command line with the value of --token hidden (system_stats shows argv, as ComfyUI does)."""
    out, hide_next = [], False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
        elif arg == "--token":
            out.append(arg)
            hide_next = True
        elif arg.startswith("--token="):
            out.append("--token=***")
        else:
            out.append(redact(arg))
    return out


class LoginIn(BaseModel):
    token: str


def login_router(token: str | None) -> APIRouter:
    """POST /v1/login {token}: sets the session cookie a browser then sends with every request."""
    api = APIRouter()

    @api.post(LOGIN_PATH, tags=["system"], summary="Exchange the token for a session cookie (browsers)",
              responses={401: {"description": "wrong token"}})
    def login(body: LoginIn) -> JSONResponse:
        if token is None:
            return JSONResponse({"ok": True, "detail": "this server has no token"})
        if not hmac.compare_digest(body.token.encode("utf-8", "replace"), token.encode()):
            return JSONResponse({"detail": "wrong token"}, status_code=401)
        response = JSONResponse({"ok": True})
        response.set_cookie(COOKIE, session_value(token), httponly=True, samesite="strict", path="/")
        return response

    return api


LOGIN_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>nodegraph: token</title></head>
<body style="font-family: sans-serif; max-width: 30em; margin: 4em auto">
<h1>nodegraph</h1><p>This server wants its token.</p>
<form id="f"><input id="t" type="password" autocomplete="current-password" size="40" autofocus>
<button>Sign in</button></form><p id="m"></p>
<script>
document.getElementById("f").onsubmit = async (e) => {
  e.preventDefault();
  const r = await fetch("/v1/login", {method: "POST", headers: {"Content-Type": "application/json"},
                                      body: JSON.stringify({token: document.getElementById("t").value})});
  if (r.ok) location.reload(); else document.getElementById("m").textContent = "Wrong token.";
};
</script></body></html>"""


class Guard:
    def __init__(self, app, token: str | None, loopback_only: bool, max_body_bytes: int,
                 allowed_origins: tuple[str, ...] | list[str] = ()) -> None:
        self.app = app
        self.token = token
        self.session = session_value(token) if token else None
        self.loopback_only = loopback_only  # the server listens on loopback only
        self.max_body_bytes = max_body_bytes
        self.allowed_origins = {normalise_origin(o) for o in allowed_origins}

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            status, message = refusal
            return await self._refuse(kind, send, status, message, self._wants_page(scope, headers, status))
        if kind == "websocket":
            return await self.app(scope, receive, send)

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
        if received and scope["method"] not in SAFE_METHODS:
            problem = self._content_type_problem(scope, headers)
            if problem is not None:
                return await self._refuse(kind, send, 415, problem)
        replayed = False

        async def replay_receive():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay_receive, send)

    # --- checks -------------------------------------------------------------------------------
    def _refusal(self, scope, headers: dict) -> tuple[int, str] | None:
        host = headers.get("host", "")
        websocket = scope["type"] == "websocket"
        changes_state = websocket or scope.get("method", "GET") not in SAFE_METHODS
        origin = headers.get("origin")
        cross_site = self._cross_site(origin, headers.get("sec-fetch-site"), host, changes_state)
        explicit = self._bearer_ok(headers) or (websocket and self._query_ok(scope))
        if cross_site and not explicit:
            shown = "a page with Origin: null" if (origin or "").strip() == "null" else (
                f"{origin[:100]}" if origin else "another site")
            return 403, f"cross-site request from {shown} refused"
        if self.token is None:
            hostname = urlsplit("//" + host).hostname if host else None
            if self.loopback_only and hostname is not None and not is_loopback_host(hostname):
                return 403, "this server only answers requests addressed to a loopback host"
            return None
        if explicit or (not cross_site and self._cookie_ok(headers)):
            return None
        if scope.get("path") == LOGIN_PATH and not websocket:
            return None  # where a browser trades the token for the cookie
        return 401, "a token is required: send 'Authorization: Bearer <token>' (websockets: ?token=<token>)"

    def _cross_site(self, origin: str | None, fetch_site: str | None, host: str, changes_state: bool) -> bool:
        if origin is not None:
            if origin.strip() == "null":
                return True
            netloc = _netloc(origin.strip())
            return netloc is None or (netloc != _netloc(host, is_host=True) and netloc not in self.allowed_origins)
        # no Origin: a browser navigation or an old browser; only trust its own word for changes
        return changes_state and (fetch_site or "").lower() in ("cross-site", "same-site")

    @staticmethod
    def _content_type_problem(scope, headers: dict) -> str | None:
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        upload = scope.get("path", "").rstrip("/").endswith(UPLOAD_SUFFIXES)
        if upload:
            return None if content_type == "multipart/form-data" else (
                f"an upload must be multipart/form-data, not {content_type or 'untyped'}")
        if content_type == "application/json" or content_type.endswith("+json"):
            return None
        if content_type in ("", "application/x-www-form-urlencoded"):
            return None  # what urllib / requests send; a form cannot make it valid JSON
        if "comfy-user" in headers or headers.get("authorization", "")[:7].lower() == "bearer ":
            return None  # headers a page cannot add without a preflight
        return f"send the body as application/json, not {content_type}"

    def _bearer_ok(self, headers: dict) -> bool:
        auth = headers.get("authorization", "")
        if self.token is None or auth[:7].lower() != "bearer ":
            return False
        return hmac.compare_digest(auth[7:].strip().encode("utf-8", "replace"), self.token.encode())

    def _query_ok(self, scope) -> bool:
        if self.token is None:
            return False
        values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token") or []
        return any(hmac.compare_digest(v.encode("utf-8", "replace"), self.token.encode()) for v in values)

    def _cookie_ok(self, headers: dict) -> bool:
        if self.session is None or "cookie" not in headers:
            return False
        cookie = SimpleCookie()
        try:
            cookie.load(headers["cookie"])
        except Exception:
            return False
        return COOKIE in cookie and hmac.compare_digest(cookie[COOKIE].value.encode("utf-8", "replace"),
                                                        self.session.encode())

    @staticmethod
    def _wants_page(scope, headers: dict, status: int) -> bool:
        """A browser opening a page of a token server without the cookie: show the login form."""
        return (status == 401 and scope["type"] == "http" and scope.get("method") == "GET"
                and "text/html" in headers.get("accept", ""))

    @staticmethod
    async def _refuse(kind: str, send, status: int, message: str, page: bool = False) -> None:
        if kind == "websocket":
            # closing before accepting makes the server answer the handshake with HTTP 403
            await send({"type": "websocket.close", "code": 1008, "reason": message[:100]})
            return
        if page:
            body, content_type = LOGIN_PAGE.encode(), b"text/html; charset=utf-8"
        else:
            body, content_type = json.dumps({"detail": message}).encode(), b"application/json"
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
