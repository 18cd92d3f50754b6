"""Saved PNGs carry ComfyUI's chunks ("prompt", then each extra_pnginfo entry such as "workflow") beside
our "nodegraph" one, and --disable-metadata writes none (ComfyUI's SaveImage and its flag, nodes.py)."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from nodegraph.executor import Executor

WORKFLOW = {"version": 1, "nodes": {
    "1": {"type": "EmptyImage", "inputs": {"width": 16, "height": 8, "batch_size": 1, "color": 0x00FF00}},
    "2": {"type": "SaveImage", "inputs": {"images": {"node": "1", "output": "IMAGE"}, "filename_prefix": "meta"}},
}}
UI_DOC = {"version": 0.4, "last_node_id": 2, "last_link_id": 1, "links": [[1, 1, 0, 2, 0, "IMAGE"]], "groups": [],
          "nodes": [{"id": 1, "type": "EmptyImage", "widgets_values": [16, 8, 1, 65280]},
                    {"id": 2, "type": "SaveImage", "widgets_values": ["meta"]}], "extra": {}}


def _saved(env, result) -> Path:
    image = result.outputs["2"]["images"][0]
    return env.folders.output / image["filename"]


def _text_chunks(path: Path) -> list[tuple[str, str]]:
    data = path.read_bytes()
    at, out = 8, []
    while at < len(data):
        length = int.from_bytes(data[at:at + 4], "big")
        kind = data[at + 4:at + 8].decode("latin-1")
        if kind == "tEXt":
            key, _, text = data[at + 8:at + 8 + length].partition(b"\0")
            out.append((key.decode("latin-1"), text.decode("latin-1")))
        at += 12 + length
    return out


def test_saved_png_carries_prompt_then_workflow_then_ours(env):
    result = Executor(env).run(WORKFLOW, extra={"extra_pnginfo": {"workflow": UI_DOC}})
    chunks = _text_chunks(_saved(env, result))
    assert [k for k, _ in chunks] == ["prompt", "workflow", "nodegraph"]  # ComfyUI's order, ours last
    text = dict(chunks)
    prompt = json.loads(text["prompt"])
    assert prompt["2"] == {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "meta"},
                           "_meta": {"title": "SaveImage"}}
    assert json.loads(text["workflow"]) == UI_DOC
    assert json.loads(text["nodegraph"])["nodes"]["2"]["type"] == "SaveImage"


def test_prompt_submitted_on_comfy_route_is_written_as_given(env):
    given = {"2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "meta"}},
             "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 8, "batch_size": 1, "color": 65280}}}
    result = Executor(env).run(WORKFLOW, extra={"metadata_text": {"prompt": given}})
    assert json.loads(dict(_text_chunks(_saved(env, result)))["prompt"]) == given


def test_disable_metadata_writes_no_text(env):
    result = Executor(env).run(WORKFLOW, extra={"no_metadata": True, "extra_pnginfo": {"workflow": UI_DOC}})
    path = _saved(env, result)
    assert _text_chunks(path) == []
    with Image.open(path) as im:
        assert not getattr(im, "text", {})


def test_cli_disable_metadata_flag(tmp_path):
    from nodegraph import cli

    doc = tmp_path / "w.json"
    doc.write_text(json.dumps(WORKFLOW))
    out = tmp_path / "out"
    for flags, expect in (([], True), (["--disable-metadata"], False)):
        assert cli.main(["run", str(doc), "--output-dir", str(out), "-q", *flags]) == 0
        newest = max(out.glob("meta_*.png"))
        assert bool(_text_chunks(newest)) is expect


def _comfy_frontend_png_reader() -> str | None:
    """getFromPngBuffer (+ decompressZlib) from ComfyUI's frontend bundle, as shipped by the
    comfyui-frontend-package pip package: the function its app calls for a dropped PNG."""
    try:
        import comfyui_frontend_package
    except ImportError:
        return None
    assets = Path(comfyui_frontend_package.__file__).parent / "static" / "assets"
    for bundle in assets.glob("*.js"):
        text = bundle.read_text(encoding="utf-8", errors="replace")
        start = text.find("async function decompressZlib(")
        end = text.find("async function getFromPngFile(")
        if start >= 0 and end > start and "async function getFromPngBuffer(" in text[start:end]:
            return text[start:end]
    return None


def test_comfyui_frontend_reader_accepts_our_png(env):
    reader = _comfy_frontend_png_reader()
    if reader is None or shutil.which("node") is None:
        pytest.skip("needs node and the comfyui-frontend-package bundle")
    result = Executor(env).run(WORKFLOW, extra={"extra_pnginfo": {"workflow": UI_DOC}})
    script = reader + """
const fs = require("fs");
const bytes = fs.readFileSync(process.argv[2]);
getFromPngBuffer(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)).then((meta) =>
  process.stdout.write(JSON.stringify(meta)));
"""
    js = env.folders.output / "reader.js"
    js.write_text(script)
    done = subprocess.run(["node", str(js), str(_saved(env, result))], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    meta = json.loads(done.stdout)
    assert set(meta) >= {"prompt", "workflow", "nodegraph"}, sorted(meta)
    # the frontend loads meta.workflow as a graph when present, else meta.prompt as API JSON
    assert json.loads(meta["workflow"]) == UI_DOC
    assert re.fullmatch(r"\{.*\}", meta["prompt"]) and json.loads(meta["prompt"])["1"]["class_type"] == "EmptyImage"
