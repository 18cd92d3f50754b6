"""Resource limits and validation before work (issue 18, items 3 and 4): each limit refuses with a
clear error that names what was too big, before the expensive part runs."""
from __future__ import annotations

import io
import struct
import time
import zlib

import pytest
from PIL import Image

from nodegraph.cli import _environment, build_parser
from nodegraph.limits import Limits, parse_size

from tests.server.conftest import ServerThread
from tests.server.helpers import L


def png_bytes(size=(4, 4)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height but holds almost no pixel data: decoding it would fail with
    'truncated', so a refusal naming the pixel limit proves the header alone was read."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def wait_done(http, job_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] not in ("pending", "running"):
            return job
        time.sleep(0.05)
    raise TimeoutError(job_id)


@pytest.fixture
def limited(server_env, tmp_path):
    limits = Limits(max_nodes=10, max_image_pixels=64 * 64, max_int_bits=256)
    with ServerThread(server_env, tmp_path / "data", ui_dir=tmp_path / "no-ui", limits=limits) as s, s.client() as http:
        yield s, http


def test_nodes_per_workflow(limited):
    server, http = limited
    nodes = {str(k): {"type": "PrimitiveInt", "inputs": {"value": k}} for k in range(11)}
    nodes["0"] = {"type": "PreviewAny", "inputs": {"source": L("1")}}
    r = http.post("/v1/jobs", json={"workflow": {"version": 1, "nodes": nodes}})
    assert r.status_code == 400 and "11 nodes, more than the limit of 10 (--max-nodes)" in r.json()["detail"]
    prompt = {str(k): {"class_type": "PrimitiveInt", "inputs": {"value": k}} for k in range(11)}
    r = http.post("/prompt", json={"prompt": prompt})
    assert r.status_code == 400 and "--max-nodes" in r.json()["error"]["message"]
    r = http.post("/v1/validate", json={"workflow": {"version": 1, "nodes": nodes}})
    assert r.json()["ok"] is False and "--max-nodes" in r.json()["errors"][0]["message"]
    assert server.state.env.limits.max_nodes == 10  # the nodes see the server's limits


def test_default_node_limit_is_generous():
    assert Limits().max_nodes == 20_000


def test_math_power_is_bounded_before_it_is_computed(limited):
    server, http = limited
    workflow = {"version": 1, "nodes": {
        "1": {"type": "MathInt", "inputs": {"a": 3, "b": 30_000_000, "op": "power"}},
        "2": {"type": "PreviewAny", "inputs": {"source": L("1", "INT")}}}}
    started = time.monotonic()
    job = wait_done(http, http.post("/v1/jobs", json={"workflow": workflow}).json()["job_id"])
    assert time.monotonic() - started < 5  # computing it held the interpreter for 10 s
    [error] = job["errors"]
    assert error["node_id"] == "1" and "limit of 256 (--max-int-bits)" in error["exception_message"]
    chained = {"version": 1, "nodes": {  # products of products grow too: (2**62)**4 squared has 497 bits
        "1": {"type": "MathInt", "inputs": {"a": 2**62, "b": 4, "op": "power"}},
        "3": {"type": "MathInt", "inputs": {"a": L("1", "INT"), "b": L("1", "INT"), "op": "multiply"}},
        "2": {"type": "PreviewAny", "inputs": {"source": L("3", "INT")}}}}
    job = wait_done(http, http.post("/v1/jobs", json={"workflow": chained}).json()["job_id"])
    [error] = job["errors"]
    assert error["node_id"] == "3" and "497 bits, more than the limit of 256" in error["exception_message"]
    workflow["nodes"]["1"]["inputs"].update(a=3, b=100, op="power")
    job = wait_done(http, http.post("/v1/jobs", json={"workflow": workflow}).json()["job_id"])
    assert job["status"] == "success" and job["outputs"]["2"]["text"] == [str(3**100)]


@pytest.mark.parametrize("prefix, says", [
    ("a\x00b", "NUL"), ("/etc/evil", "absolute"), ("C:\\evil", "absolute"), ("../../escaped", "'..'"),
    ("sub/../../x", "'..'"), ("x" * 300, "300 characters"), ("sub\\..\\..\\x", "'..'")])
def test_filename_prefix_refused_at_validation(limited, prefix, says):
    _, http = limited
    workflow = {"version": 1, "nodes": {
        "1": {"type": "EmptyImage", "inputs": {"width": 4, "height": 4}},
        "2": {"type": "SaveImage", "inputs": {"images": L("1"), "filename_prefix": prefix}}}}
    r = http.post("/v1/jobs", json={"workflow": workflow})
    assert r.status_code == 400
    [error] = r.json()["errors"]
    assert (error["node"], error["input"]) == ("2", "filename_prefix") and says in error["message"]
    r = http.post("/prompt", json={"prompt": {"1": {"class_type": "EmptyImage", "inputs": {"width": 4, "height": 4}},
                                              "2": {"class_type": "SaveImage",
                                                    "inputs": {"images": ["1", 0], "filename_prefix": prefix}}}})
    assert r.status_code == 400
    [error] = r.json()["node_errors"]["2"]["errors"]
    assert error["extra_info"]["input_name"] == "filename_prefix"


def test_good_prefixes_still_save(limited):
    _, http = limited
    workflow = {"version": 1, "nodes": {
        "1": {"type": "EmptyImage", "inputs": {"width": 4, "height": 4}},
        "2": {"type": "SaveImage", "inputs": {"images": L("1"), "filename_prefix": "sub/dir/pic..name"}}}}
    job = wait_done(http, http.post("/v1/jobs", json={"workflow": workflow}).json()["job_id"])
    assert job["status"] == "success" and job["outputs"]["2"]["images"][0]["subfolder"] == "sub/dir"


@pytest.mark.parametrize("name, says", [
    ("x" * 300 + ".png", "longer than 200"), ("é" * 150 + ".png", "longer than 200"),  # 300 UTF-8 bytes
    ("evil.py", "must end in"), ("evil.png.html", "must end in"), ("noext", "must end in"),
    ("photo\u202egnp.exe", "U+202E"), ("a\u200bb.png", "U+200B"), ("tab\there.png", "U+0009")])
def test_upload_names_are_refused_with_400(limited, name, says):
    server, http = limited
    # written by hand: httpx (like browsers) percent-escapes control characters in multipart names, curl does not
    body = (b'--B\r\nContent-Disposition: form-data; name="image"; filename="' + name.encode() + b'"\r\n'
            b"Content-Type: image/png\r\n\r\n" + png_bytes() + b"\r\n--B--\r\n")
    for route in ("/upload/image", "/v1/upload/image"):
        r = http.post(route, content=body, headers={"Content-Type": "multipart/form-data; boundary=B"})
        assert r.status_code == 400 and says in r.json()["detail"], (route, name, r.status_code, r.text)
    assert not [p for p in server.state.env.folders.input.iterdir() if p.name != "pic.png"]


def test_upload_subfolder_names_and_mask_extensions(limited):
    server, http = limited
    r = http.post("/upload/image", files={"image": ("ok.png", png_bytes(), "image/png")},
                  data={"subfolder": "s" * 300})
    assert r.status_code == 400
    r = http.post("/upload/image", files={"image": ("ok.JPG", png_bytes(), "image/png")})
    assert r.status_code == 200  # extensions compare case-insensitively
    r = http.post("/upload/mask", files={"image": ("mask.jpg", png_bytes(), "image/png")},
                  data={"original_ref": '{"filename": "ok.JPG", "type": "input"}'})
    assert r.status_code == 400 and ".png" in r.json()["detail"]  # a mask is written as PNG
    r = http.post("/upload/mask", files={"image": ("mask.png", png_bytes(), "image/png")},
                  data={"original_ref": '{"filename": "ok.JPG", "type": "input"}'})
    assert r.status_code == 200


def test_decompression_bombs_refused_from_the_header(limited):
    server, http = limited
    bomb = png_header_only(9000, 9000)  # 81 Mpx claimed in 100 bytes
    for route in ("/upload/image", "/v1/upload/image"):
        r = http.post(route, files={"image": ("bomb.png", bomb, "image/png")})
        assert r.status_code == 413 and "9000x9000" in r.json()["detail"] and "--max-image-pixels" in r.json()["detail"]
    r = http.post("/upload/image", files={"image": ("huge.png", png_header_only(60000, 60000), "image/png")})
    assert r.status_code == 413  # PIL's own bomb check fires on open: still a 413, not a 500

    # LoadImage and LoadImageMask, from a file already in the input folder
    (server.state.env.folders.input / "bomb.png").write_bytes(bomb)
    for node, extra in (("LoadImage", {}), ("LoadImageMask", {"channel": "alpha"})):
        workflow = {"version": 1, "nodes": {"1": {"type": node, "inputs": {"image": "bomb.png", **extra}}},
                    "2": {"type": "PreviewAny", "inputs": {"source": L("1")}}}
        workflow["nodes"]["2"] = workflow.pop("2")
        job = wait_done(http, http.post("/v1/jobs", json={"workflow": workflow}).json()["job_id"])
        [error] = job["errors"]
        assert error["node_id"] == "1" and "9000x9000" in error["exception_message"], error
        assert "input 'image'" in error["exception_message"] and "truncated" not in error["exception_message"]
    # an animation's frames count together
    frames = [Image.new("RGB", (40, 40), (k, 0, 0)) for k in range(4)]  # 4 x 1600 px > 4096
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    (server.state.env.folders.input / "anim.gif").write_bytes(buffer.getvalue())
    workflow = {"version": 1, "nodes": {"1": {"type": "LoadImage", "inputs": {"image": "anim.gif"}},
                                        "2": {"type": "PreviewAny", "inputs": {"source": L("1")}}}}
    job = wait_done(http, http.post("/v1/jobs", json={"workflow": workflow}).json()["job_id"])
    assert "--max-image-pixels" in job["errors"][0]["exception_message"]


def test_cache_and_vram_budget_come_from_the_flags(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["serve", "--cache-bytes", "512M", "--vram-budget", "6GiB",
                                      "--max-image-pixels", "1M", "--max-submission-bytes", "2M",
                                      "--max-upload-bytes", "1M", "--allow-origin", "http://localhost:5173"])
    env = _environment(args)
    assert env.cache.max_bytes == 512 * 2**20 and env.devices.vram_budget == 6 * 2**30
    assert (env.limits.max_image_pixels, env.limits.max_body_bytes, env.limits.max_upload_bytes) == \
        (10**6, 2 * 2**20, 2**20)
    assert parse_size("1.5G") == 3 * 2**29 and parse_size("2000") == 2000
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")
