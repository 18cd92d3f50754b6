"""Safety: path traversal and symlinks, tokens, cross-site requests, size limits, insecure binds."""
from __future__ import annotations

import io
import os

import httpx
import pytest
import websocket
from PIL import Image
from websockets.sync.client import connect

from nodegraph.server import Limits, make_server
from nodegraph.server.security import is_loopback_host

from tests.server.conftest import ServerThread
from tests.server.helpers import tiny_workflow


def png_bytes(size=(4, 4)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_file_routes_refuse_traversal_and_symlinks_out_of_their_folders(server, http, tmp_path):
    folders = server.state.env.folders
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (folders.output / "ok.png").write_bytes(png_bytes())
    os.symlink(secret, folders.output / "link.png")
    os.symlink(tmp_path, folders.output / "linkdir")
    attempts = [
        {"filename": "../../secret.txt"},
        {"filename": "secret.txt", "subfolder": "../.."},
        {"filename": str(secret)},
        {"filename": "secret.txt", "subfolder": str(tmp_path)},
        {"filename": "link.png"},
        {"filename": "secret.txt", "subfolder": "linkdir"},
        {"filename": "ok.png", "type": "../output"},
        {"filename": "..", "subfolder": ""},
        {"filename": "ok.png\x00.txt"},
    ]
    for route in ("/v1/view", "/view"):
        for params in attempts:
            r = http.get(route, params=params)
            assert r.status_code in (400, 403, 404), (route, params, r.status_code)
            assert "top secret" not in r.text
        assert http.get(route, params={"filename": "ok.png"}).status_code == 200
    raw = httpx.get(f"{server.url}/view?filename=..%2F..%2Fsecret.txt")
    assert raw.status_code in (400, 403, 404) and "top secret" not in raw.text

    for route in ("/v1/upload/image", "/upload/image"):
        r = http.post(route, files={"image": ("../../evil.png", png_bytes(), "image/png")})
        assert r.status_code == 200 and r.json()["name"] == "evil.png"  # only the base name is used
        assert (folders.input / "evil.png").is_file() and not (tmp_path / "evil.png").exists()
        for subfolder in ("../..", str(tmp_path), "linkdir/.."):
            r = http.post(route, files={"image": ("x.png", png_bytes(), "image/png")},
                          data={"subfolder": subfolder, "type": "output"})
            assert r.status_code in (400, 403), (route, subfolder, r.status_code)
        r = http.post(route, files={"image": ("x.png", png_bytes(), "image/png")}, data={"type": "elsewhere"})
        assert r.status_code == 400
    assert not list(tmp_path.glob("x.png")) and secret.read_text() == "top secret"
    r = http.post("/v1/upload/mask", files={"image": ("m.png", png_bytes(), "image/png")},
                  data={"original_ref": '{"filename": "../../secret.txt", "type": "output"}'})
    assert r.status_code in (400, 403, 404)


def test_workflow_outputs_cannot_escape_the_output_folder(server, http, tmp_path):
    # a literal prefix is refused at validation (test_limits.py); one from a link only when it runs
    workflow = {"version": 1, "nodes": {
        "1": {"type": "EmptyImage", "inputs": {"width": 4, "height": 4}},
        "3": {"type": "PrimitiveString", "inputs": {"value": "../../escaped"}},
        "2": {"type": "SaveImage", "inputs": {"images": {"node": "1", "output": 0},
                                              "filename_prefix": {"node": "3", "output": 0}}}}}
    job_id = http.post("/v1/jobs", json={"workflow": workflow}).json()["job_id"]
    import time

    deadline = time.monotonic() + 20
    while http.get(f"/v1/jobs/{job_id}").json()["status"] in ("pending", "running") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert http.get(f"/v1/jobs/{job_id}").json()["status"] == "error"
    assert not list(tmp_path.rglob("escaped*"))


def test_token_protected_server_refuses_requests_without_it(server_env, tmp_path):
    token = "s3cret-token-0123456789"
    with ServerThread(server_env, tmp_path / "data", token=token, ui_dir=tmp_path / "no-ui") as s:
        base = s.url
        for method, path in [("GET", "/v1/queue"), ("GET", "/"), ("GET", "/object_info"), ("POST", "/prompt"),
                             ("GET", "/view?filename=x.png"), ("POST", "/v1/interrupt"), ("GET", "/docs"),
                             ("GET", "/openapi.json"), ("POST", "/v1/jobs")]:
            r = httpx.request(method, base + path, json={} if method == "POST" else None)
            assert r.status_code == 401, (method, path, r.status_code)
            r = httpx.request(method, base + path, headers={"Authorization": "Bearer wrong"})
            assert r.status_code == 401
        assert httpx.get(base + "/v1/queue", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        # a query-string token ends up in logs and browser history: only the websocket handshake takes it
        assert httpx.get(base + f"/v1/queue?token={token}").status_code == 401
        with httpx.Client(base_url=base) as browser:  # the login cookie lets the editor load its assets
            page = browser.get("/", headers={"Accept": "text/html"})
            assert page.status_code == 401 and "/v1/login" in page.text and token not in page.text
            assert browser.post("/v1/login", json={"token": "wrong-token-0123456789"}).status_code == 401
            r = browser.post("/v1/login", json={"token": token})
            assert r.status_code == 200 and "nodegraph_session" in r.headers["set-cookie"]
            assert token not in r.headers["set-cookie"]  # the cookie holds a value derived from it
            assert browser.get("/v1/status").status_code == 200
            assert browser.get("/").status_code == 200

        for path in ("/v1/ws?client_id=a", "/ws?clientId=a"):
            with pytest.raises(Exception):
                connect(s.ws_url + path).__enter__()
            ws = websocket.create_connection(f"{s.ws_url}{path}&token={token}", timeout=10)
            assert '"status"' in ws.recv()
            ws.close()
            ws = websocket.create_connection(f"{s.ws_url}{path}", timeout=10,
                                             header=[f"Authorization: Bearer {token}"])
            assert '"status"' in ws.recv()
            ws.close()
        with s.client() as http:
            r = http.post("/v1/jobs", json={"workflow": tiny_workflow(1)})
            assert r.status_code == 200


def test_listening_off_loopback_requires_a_token(server_env, tmp_path):
    for host in ("0.0.0.0", "192.168.1.10", "::"):
        with pytest.raises(SystemExit, match="without a token"):
            make_server(server_env, host, 8188, None, tmp_path)
    assert is_loopback_host("127.0.0.1") and is_loopback_host("localhost") and is_loopback_host("::1")
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("evil.example")


def test_request_bodies_and_images_are_bounded(server_env, tmp_path):
    limits = Limits(max_body_bytes=200_000, max_upload_bytes=150_000, max_image_pixels=64 * 64)
    with ServerThread(server_env, tmp_path / "data", ui_dir=tmp_path / "no-ui", limits=limits) as s, s.client() as http:
        big = {"workflow": tiny_workflow(1), "extra": {"blob": "x" * 300_000}}
        assert http.post("/v1/jobs", json=big).status_code == 413

        def chunks():  # no Content-Length: counted as it streams
            for _ in range(50):
                yield b"x" * 10_000

        assert http.post("/prompt", content=chunks()).status_code == 413
        r = http.post("/v1/upload/image", files={"image": ("big.png", png_bytes((100, 100)), "image/png")})
        assert r.status_code == 413 and "pixels" in r.text
        r = http.post("/upload/image", files={"image": ("small.png", png_bytes((8, 8)), "image/png")})
        assert r.status_code == 200
        r = http.post("/upload/image", files={"image": ("fake.png", b"not an image", "image/png")})
        assert r.status_code == 400
        assert http.get("/v1/status").status_code == 200


def test_absurd_allocations_are_rejected_at_validation(server, http):
    workflow = {"version": 1, "nodes": {
        "1": {"type": "EmptyImage", "inputs": {"width": 16384, "height": 16384, "batch_size": 10**6}},
        "2": {"type": "SaveImage", "inputs": {"images": {"node": "1", "output": 0}}}}}
    r = http.post("/v1/jobs", json={"workflow": workflow})
    assert r.status_code == 400
    assert [(e["node"], e["input"]) for e in r.json()["errors"]] == [("1", "batch_size")]
    r = http.post("/prompt", json={"prompt": {"1": {"class_type": "GradientSteps", "inputs": {"size": 10**12}},
                                              "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}})
    [error] = r.json()["node_errors"]["1"]["errors"]
    assert r.status_code == 400 and error["type"] == "value_bigger_than_max"  # ComfyUI's vocabulary
