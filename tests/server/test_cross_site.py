"""Cross-site safety as the browser security model demands (issue 18, item 1).

Every state-changing route (taken from the app's own route table, so routes added later are
covered) is called with `Origin: null` (sandboxed iframes, data: pages), a foreign origin, the
server's own origin, another loopback port, and no Origin at all (a program, as ComfyUI's scripts),
on a loopback server without a token and on one with a token, with and without it. Both event
websockets get the same matrix.
"""
from __future__ import annotations

import io
import logging

import httpx
import pytest
import websocket
from PIL import Image

from nodegraph.server.security import SAFE_METHODS, RedactTokens, check_token, redact, redact_argv

from tests.server.conftest import ServerThread

TOKEN = "matrix-token-0123456789abcdef"
FOREIGN = "http://evil.example"
REFUSED = (401, 403, 415)


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def state_changing_routes(server) -> list[tuple[str, str]]:
    """From the served OpenAPI document: every documented route whose method changes state."""
    paths = httpx.get(server.url + "/openapi.json", headers=server.client().headers).json()["paths"]
    return [(method.upper(), path.replace("{", "").replace("}", ""))  # {job_id} -> job_id
            for path, operations in sorted(paths.items()) for method in operations
            if method.upper() not in SAFE_METHODS]


def call(server, method: str, path: str, origin: str | None = None, content_type: str | None = None,
         headers: dict | None = None) -> httpx.Response:
    headers = dict(headers or {})
    if origin is not None:
        headers["Origin"] = origin
    if path.endswith(("/upload/image", "/upload/mask")):
        data = {"original_ref": '{"filename": "none.png", "type": "input"}'} if path.endswith("mask") else {}
        return httpx.request(method, server.url + path, headers=headers, timeout=20, data=data,
                             files={"image": ("matrix.png", png_bytes(), "image/png")})
    headers["Content-Type"] = content_type or "application/json"
    body = b'{"workflow": {}, "prompt": {}, "token": "x"}' if method != "DELETE" else b""
    return httpx.request(method, server.url + path, headers=headers, content=body, timeout=20)


def test_every_state_changing_route_refuses_pages_of_other_sites(server):
    routes = state_changing_routes(server)
    paths = {path for _, path in routes}
    assert {"/prompt", "/queue", "/interrupt", "/upload/image", "/v1/jobs", "/v1/queue/clear",
            "/v1/upload/image", "/v1/interrupt"} <= paths, paths
    own = server.url
    for method, path in routes:
        for origin in ("null", FOREIGN, "http://localhost:5173", "http://127.0.0.1:1"):
            r = call(server, method, path, origin)
            assert r.status_code == 403, (method, path, origin, r.status_code, r.text)
            assert "cross-site" in r.json()["detail"]
        # a browser that left Origin out but says where the request came from
        r = call(server, method, path, headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403, (method, path, r.status_code)
        for origin in (None, own):  # a program (ComfyUI's scripts), the server's own page
            r = call(server, method, path, origin)
            assert r.status_code not in REFUSED and r.status_code < 500, (method, path, origin, r.status_code, r.text)
        if method != "DELETE" and not path.endswith(("/upload/image", "/upload/mask")):
            # text/plain is what a form can fill with JSON without a preflight
            for origin in (None, own):
                r = call(server, method, path, origin, content_type="text/plain")
                assert r.status_code == 415, (method, path, origin, r.status_code)
            # what urllib sends by default (ComfyUI's example scripts), from a program
            r = call(server, method, path, None, content_type="application/x-www-form-urlencoded")
            assert r.status_code not in REFUSED, (method, path, r.status_code)


def test_uploads_must_be_multipart(server):
    for path in ("/upload/image", "/v1/upload/image"):
        r = httpx.post(server.url + path, content=png_bytes(), headers={"Content-Type": "image/png"})
        assert r.status_code == 415 and "multipart" in r.json()["detail"]
    # and multipart goes nowhere else
    r = httpx.post(server.url + "/prompt", files={"prompt": ("p.json", b"{}", "application/json")},
                   headers={"Origin": server.url})
    assert r.status_code == 415


def test_the_dev_proxy_and_allowed_origins_pass(server_env, tmp_path):
    with ServerThread(server_env, tmp_path / "data", ui_dir=tmp_path / "no-ui",
                      allowed_origins=("http://localhost:5173",)) as s:
        r = call(s, "POST", "/v1/queue/clear", "http://localhost:5173")
        assert r.status_code == 200
        assert call(s, "POST", "/v1/queue/clear", "http://localhost:5174").status_code == 403
    with ServerThread(server_env, tmp_path / "data2", ui_dir=tmp_path / "no-ui") as s:
        # Vite's proxy keeps the browser's Host (localhost:5173) and Origin: same origin
        r = call(s, "POST", "/v1/queue/clear", "http://localhost:5173", headers={"Host": "localhost:5173"})
        assert r.status_code == 200
        # a foreign page whose name resolves to 127.0.0.1 (DNS rebinding) is same-origin by Host, but not loopback
        r = call(s, "POST", "/v1/queue/clear", "http://evil.example:80", headers={"Host": "evil.example"})
        assert r.status_code == 403


def test_token_server_matrix(server_env, tmp_path):
    with ServerThread(server_env, tmp_path / "data", token=TOKEN, ui_dir=tmp_path / "no-ui") as s:
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=s.url) as browser:
            assert browser.post("/v1/login", json={"token": TOKEN}, headers={"Origin": s.url}).status_code == 200
            cookie = browser.cookies.get("nodegraph_session")
        session = {"Cookie": f"nodegraph_session={cookie}"}
        for method, path in state_changing_routes(s):
            if path == "/v1/login":
                continue
            for origin in (None, "null", FOREIGN, s.url):
                r = call(s, method, path, origin)
                expected = 401 if origin in (None, s.url) else 403
                assert r.status_code == expected, (method, path, origin, r.status_code)
                # the token, explicitly sent, is enough from anywhere
                r = call(s, method, path, origin, headers=bearer)
                assert r.status_code not in REFUSED and r.status_code < 500, (method, path, origin, r.status_code)
                # the query string is not a place for it on HTTP
                r = call(s, method, path + f"?token={TOKEN}", origin)
                assert r.status_code in (401, 403), (method, path, origin, r.status_code)
            # the session cookie is ambient authority: only the server's own pages may use it
            assert call(s, method, path, s.url, headers=session).status_code not in REFUSED
            for origin in ("null", FOREIGN):
                assert call(s, method, path, origin, headers=session).status_code == 403
        # login itself is same-origin only (a page must not plant its own session)
        assert httpx.post(s.url + "/v1/login", json={"token": TOKEN}, headers={"Origin": FOREIGN}).status_code == 403


def _ws_opens(url: str, origin: str | None = None, header: list[str] | None = None) -> bool:
    try:
        ws = websocket.create_connection(url, timeout=10, origin=origin, header=header or [],
                                         suppress_origin=origin is None)
    except websocket.WebSocketBadStatusException:
        return False
    try:
        return '"status"' in ws.recv()
    finally:
        ws.close()


def test_websockets_check_the_origin(server, server_env, tmp_path):
    for path in ("/ws?clientId=a", "/v1/ws?client_id=a"):
        url = server.ws_url + path
        assert _ws_opens(url)  # a program
        assert _ws_opens(url, origin=server.url)  # the server's own page
        for origin in ("null", FOREIGN, "http://localhost:5173"):
            assert not _ws_opens(url, origin=origin), (path, origin)
    with ServerThread(server_env, tmp_path / "data", token=TOKEN, ui_dir=tmp_path / "no-ui") as s:
        for path in ("/ws?clientId=a", "/v1/ws?client_id=a"):
            url = s.ws_url + path
            assert not _ws_opens(url) and not _ws_opens(url, origin=s.url)
            assert _ws_opens(f"{url}&token={TOKEN}") and _ws_opens(f"{url}&token={TOKEN}", origin=s.url)
            assert not _ws_opens(f"{url}&token={TOKEN[:-1]}")
            assert _ws_opens(url, header=[f"Authorization: Bearer {TOKEN}"])
            with httpx.Client(base_url=s.url) as browser:
                browser.post("/v1/login", json={"token": TOKEN})
                cookie = [f"Cookie: nodegraph_session={browser.cookies.get('nodegraph_session')}"]
            assert _ws_opens(url, origin=s.url, header=cookie)
            assert not _ws_opens(url, origin=FOREIGN, header=cookie)


def test_tokens_must_be_long_and_stay_out_of_logs_and_routes(server_env, tmp_path, monkeypatch):
    for bad in ("", "   ", "short", "fifteen-chars!!"):
        with pytest.raises(SystemExit, match="token"):
            check_token(bad)
    assert check_token("sixteen-chars!!!") == "sixteen-chars!!!"
    assert redact('127.0.0.1 - "GET /v1/ws?client_id=a&token=abc HTTP/1.1" 101') == \
        '127.0.0.1 - "GET /v1/ws?client_id=a&token=*** HTTP/1.1" 101'
    assert redact_argv(["nodegraph", "serve", "--token", TOKEN]) == ["nodegraph", "serve", "--token", "***"]
    assert redact_argv([f"--token={TOKEN}"]) == ["--token=***"]

    monkeypatch.setattr("sys.argv", ["nodegraph", "serve", "--token", TOKEN])
    records: list[logging.LogRecord] = []
    catcher = logging.Handler()
    catcher.emit = records.append
    with ServerThread(server_env, tmp_path / "data", token=TOKEN, ui_dir=tmp_path / "no-ui") as s:
        loggers = [logging.getLogger(name) for name in ("uvicorn.access", "uvicorn.error")]
        assert all(any(isinstance(f, RedactTokens) for f in lg.filters) for lg in loggers)
        levels = [lg.level for lg in loggers]
        for lg in loggers:  # a handler on the logger itself sees records after the logger's filters
            lg.addHandler(catcher)
            lg.setLevel(logging.INFO)
        try:
            with s.client() as http:
                for path in ("/system_stats", "/v1/system_stats"):
                    r = http.get(path)
                    assert r.status_code == 200 and TOKEN not in r.text and "***" in r.json()["system"]["argv"]
                http.get(f"/v1/status?token={TOKEN}")
            assert _ws_opens(f"{s.ws_url}/ws?clientId=a&token={TOKEN}")
        finally:
            for lg, level in zip(loggers, levels):
                lg.removeHandler(catcher)
                lg.setLevel(level)
    logged = "\n".join(record.getMessage() for record in records)
    assert "token=***" in logged and TOKEN not in logged, logged
