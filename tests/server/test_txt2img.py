"""The default txt2img workflow through the server (runs once workflows/txt2img.json exists)."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from tests.server.conftest import ServerThread
from tests.server.helpers import Events

ROOT = Path(__file__).resolve().parents[2]
TXT2IMG = ROOT / "workflows" / "txt2img.json"


@pytest.mark.slow  # the default model sampled over HTTP + websocket
@pytest.mark.skipif(not TXT2IMG.exists(), reason="workflows/txt2img.json has not landed yet")
def test_default_txt2img_workflow_over_the_server(tmp_path, builtin_registry):
    from nodegraph.environment import Environment
    from nodegraph.folders import Folders

    for name in ("models", "output", "input", "temp"):
        (tmp_path / name).mkdir()
    env = Environment(registry=builtin_registry, folders=Folders(tmp_path))
    with ServerThread(env, tmp_path / "data", ui_dir=tmp_path / "no-ui") as server, server.client() as http:
        workflow = http.get("/v1/workflows/txt2img").json()
        events = Events(server.ws_url, "t2i")
        try:
            r = http.post("/v1/jobs", json={"workflow": workflow, "client_id": "t2i"})
            assert r.status_code == 200, r.text
            mine = events.until_done(r.json()["job_id"], timeout=600)
        finally:
            events.close()
        names = [e for e, _ in mine]
        assert "execution_success" in names and "progress" in names, mine
        images = [img for e, d in mine if e == "executed" for img in d["output"].get("images", [])]
        assert images
        png = Image.open(io.BytesIO(http.get("/v1/view", params=images[0]).content))
        assert min(png.size) >= 32 and "nodegraph" in png.text
