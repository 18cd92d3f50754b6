"""`nodegraph serve --disable-metadata` (ComfyUI's flag): saved images carry no text chunks, whichever
route the job came through; without it they carry prompt, workflow and nodegraph."""
from PIL import Image

from tests.server.conftest import ServerThread
from tests.server.helpers import wait_finished

WORKFLOW = {"version": 1, "nodes": {
    "1": {"type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 255}},
    "2": {"type": "SaveImage", "inputs": {"images": {"node": "1", "output": "IMAGE"}, "filename_prefix": "meta"}},
}}


def _saved_text(server_env, http, workflow_ui, prefix: str) -> dict:
    workflow = {"version": 1, "nodes": {**WORKFLOW["nodes"], "2": {**WORKFLOW["nodes"]["2"], "inputs": {
        **WORKFLOW["nodes"]["2"]["inputs"], "filename_prefix": prefix}}}}  # a new file, not a cached result
    r = http.post("/v1/jobs", json={"workflow": workflow, "client_id": "t",
                                    "extra": {"extra_pnginfo": {"workflow": workflow_ui}}})
    assert r.status_code == 200, r.text
    job = wait_finished(http, r.json()["job_id"])
    assert job["status"] == "success", job
    image = job["outputs"]["2"]["images"][0]
    with Image.open(server_env.folders.output / image["filename"]) as im:
        return dict(im.text)


def test_serve_disable_metadata(server_env, tmp_path):
    ui = {"nodes": [], "links": [], "version": 0.4}
    with ServerThread(server_env, tmp_path / "a", ui_dir=tmp_path / "no-ui") as plain, plain.client() as http:
        assert set(_saved_text(server_env, http, ui, "with")) == {"prompt", "workflow", "nodegraph"}
    with ServerThread(server_env, tmp_path / "b", ui_dir=tmp_path / "no-ui", disable_metadata=True) as bare, \
            bare.client() as http:
        assert _saved_text(server_env, http, ui, "without") == {}
