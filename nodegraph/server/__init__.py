"""The nodegraph server: HTTP API (native + ComfyUI-compatible), websocket events, persistent queue.

    from nodegraph.server import create_app, serve
    serve(env, host="127.0.0.1", port=8188, token=None, data_dir=".")   # blocking

Listening on anything but loopback requires a token. See app.py for the route table.
"""
from __future__ import annotations

import logging
import socket
from pathlib import Path

from .app import create_app
from ..limits import Limits
from .security import check_token, is_loopback_host, redact_server_logs

__all__ = ["create_app", "serve", "Limits", "is_loopback_host"]


class InsecureBind(SystemExit):
    pass


def make_server(env, host: str = "127.0.0.1", port: int = 8188, token: str | None = None,
                data_dir: str | Path = ".", ui_dir: str | Path | None = None, log_level: str = "info",
                limits: Limits | None = None, shutdown_timeout: float = 5.0, **app_kw):
    """A configured uvicorn.Server (not started): call .run(), or .run(sockets=[...]) with a bound socket.
    `shutdown_timeout`: at most this long for open requests, and again for the running job, at shutdown."""
    import uvicorn

    token = check_token(token)
    loopback = is_loopback_host(host)
    if not loopback and not token:
        raise InsecureBind(f"refusing to listen on {host!r} without a token: anyone who can reach it could run "
                           "workflows and read outputs. Pass --token SECRET (clients send 'Authorization: Bearer "
                           "SECRET' or ?token=SECRET), or listen on 127.0.0.1.")
    app = create_app(env, token=token, data_dir=data_dir, ui_dir=ui_dir, loopback_only=loopback and not token,
                     limits=limits, stop_timeout=shutdown_timeout, **app_kw)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, ws_max_size=1 << 20,
                            timeout_graceful_shutdown=shutdown_timeout, lifespan="on")
    redact_server_logs()  # after uvicorn.Config, which (re)configures its loggers
    return uvicorn.Server(config)


def serve(env, host: str = "127.0.0.1", port: int = 8188, token: str | None = None, data_dir: str | Path = ".",
          ui_dir: str | Path | None = None, log_level: str = "info", limits: Limits | None = None,
          allowed_origins: tuple[str, ...] = (), shutdown_timeout: float = 0.3, frontend: str | None = None,
          **app_kw) -> None:
    """Serve until Ctrl-C (or SIGTERM), which stops it in well under a second: the running job is
    interrupted and put back at the front of the queue. Blocking; returns normally after Ctrl-C.
    `frontend`: None (our editor), "comfy" or a folder; `app_kw` go to create_app (in_process,
    interrupt_grace, preview_method: the default for prompts on ComfyUI's routes ...)."""
    server = make_server(env, host, port, token, data_dir, ui_dir, log_level, limits=limits,
                         allowed_origins=tuple(allowed_origins), shutdown_timeout=shutdown_timeout,
                         frontend=frontend, **app_kw)
    shown = f"[{host}]" if ":" in host else host
    logging.getLogger("nodegraph.server").info("nodegraph: http://%s:%d/ (API docs at /docs)", shown, port)
    print(f"nodegraph server: http://{shown}:{port}/  (API docs: /docs, queue database: "
          f"{Path(data_dir).resolve()})", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled, once it has shut down
        pass
    print("nodegraph server stopped", flush=True)


def free_port_socket(host: str = "127.0.0.1") -> socket.socket:
    """A socket bound to a free port (for tests and benchmarks: no race on the port number)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock
