"""ComfyUI 0.8's app routes, under both / and /api: shapes from app/user_manager.py,
app/app_settings.py, comfy_execution/jobs.py + server.py (jobs), comfy_api/feature_flags.py,
app/model_manager.py and api_server/routes/internal/internal_routes.py."""
from __future__ import annotations

import json
import time

import pytest

from tests.server.test_comfy import API_PROMPT


@pytest.mark.parametrize("prefix", ["", "/api"])
def test_settings_are_kept_per_user_on_the_server(server, http, tmp_path, prefix):
    assert http.get(f"{prefix}/settings").json() == {}
    assert http.post(f"{prefix}/settings", content=json.dumps({"Comfy.A": 1, "Comfy.B": "x"})).status_code == 200
    assert http.post(f"{prefix}/settings/Comfy.A", content="2").status_code == 200
    assert http.get(f"{prefix}/settings").json() == {"Comfy.A": 2, "Comfy.B": "x"}
    assert http.get(f"{prefix}/settings/Comfy.B").json() == "x" and http.get(f"{prefix}/settings/none").json() is None
    stored = json.loads((tmp_path / "data" / "user" / "default" / "comfy.settings.json").read_text())
    assert stored == {"Comfy.A": 2, "Comfy.B": "x"}
    assert http.get(f"{prefix}/users").json() == {"storage": "server", "migrated": True}


def test_userdata_write_list_move_delete_and_traversal(server, http, tmp_path):
    body = json.dumps({"nodes": []})
    r = http.post("/api/userdata/workflows%2Fa.json?overwrite=false&full_info=true", content=body)
    assert r.status_code == 200 and r.json()["path"] == "workflows/a.json" and r.json()["size"] == len(body)
    assert http.post("/api/userdata/workflows%2Fa.json?overwrite=false", content=body).status_code == 409
    assert http.post("/api/userdata/workflows%2Fa.json", content=b"{}").json() == "workflows/a.json"
    assert http.get("/api/userdata/workflows%2Fa.json").content == b"{}"
    listing = http.get("/api/userdata", params={"dir": "workflows", "recurse": "true", "full_info": "true"}).json()
    assert [f["path"] for f in listing] == ["a.json"] and {"size", "modified", "created"} <= set(listing[0])
    assert http.get("/api/userdata", params={"dir": "workflows", "split": "true"}).json() == [["a.json", "a.json"]]
    assert http.get("/api/userdata", params={"dir": "nothing"}).status_code == 404
    assert http.get("/api/userdata").status_code == 400
    r = http.post("/api/userdata/workflows%2Fa.json/move/workflows%2Fsub%2Fb.json")
    assert r.status_code == 200 and r.json() == "workflows/sub/b.json"
    assert http.get("/api/userdata/workflows%2Fa.json").status_code == 404
    for bad in ("..%2F..%2Fescape.json", "%2e%2e%2Fescape.json", "..%252Fescape.json"):
        assert http.post(f"/api/userdata/{bad}", content=b"x").status_code == 403, bad
        assert http.get(f"/api/userdata/{bad}").status_code == 403, bad
    assert not (tmp_path / "data" / "escape.json").exists()
    assert http.get("/api/userdata", params={"dir": "../.."}).status_code == 403
    assert http.delete("/api/userdata/workflows%2Fsub%2Fb.json").status_code == 204
    v2 = http.get("/api/v2/userdata").json()
    assert {"name": "workflows", "path": "workflows", "type": "directory"} in v2


def test_jobs_api_lists_filters_and_shows_one_job(server, http):
    ids = [http.post("/prompt", content=json.dumps({"prompt": API_PROMPT, "client_id": "c",
                                                    "extra_data": {"extra_pnginfo": {"workflow": {"id": "wf-1"}},
                                                                   "api_key_comfy_org": "secret"}})).json()["prompt_id"]
           for _ in range(2)]
    deadline = time.monotonic() + 30
    while http.get("/api/jobs", params={"status": "completed"}).json()["pagination"]["total"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    page = http.get("/api/jobs", params={"limit": 1}).json()
    assert page["pagination"] == {"offset": 0, "limit": 1, "total": 2, "has_more": True}
    newest = page["jobs"][0]
    assert newest["id"] == ids[1] and newest["status"] == "completed" and newest["workflow_id"] == "wf-1"
    assert newest["outputs_count"] == 1 and newest["preview_output"]["nodeId"] == "2"
    assert newest["preview_output"]["mediaType"] == "images" and newest["preview_output"]["type"] == "output"
    assert newest["execution_end_time"] >= newest["execution_start_time"] >= newest["create_time"] - 1000
    asc = http.get("/api/jobs", params={"sort_order": "asc"}).json()["jobs"]
    assert [j["id"] for j in asc] == ids
    assert http.get("/api/jobs", params={"workflow_id": "other"}).json()["jobs"] == []
    assert http.get("/api/jobs", params={"status": "nope"}).status_code == 400
    assert http.get("/api/jobs", params={"limit": 0}).json() == {"error": "limit must be a positive integer"}
    one = http.get(f"/api/jobs/{ids[0]}").json()
    assert one["outputs"]["2"]["images"][0]["type"] == "output"
    assert one["execution_status"]["status_str"] == "success"
    assert one["workflow"]["prompt"] == API_PROMPT and "api_key_comfy_org" not in one["workflow"]["extra_data"]
    assert one["workflow"]["extra_data"]["client_id"] == "c"
    assert http.get("/api/jobs/unknown").status_code == 404
    assert http.post(f"/api/jobs/{ids[0]}/cancel").json() == {"cancelled": False}  # finished: a no-op
    assert http.post("/api/jobs/cancel", content=json.dumps({"job_ids": "x"})).status_code == 400
    history = http.get(f"/history/{ids[0]}").json()[ids[0]]
    assert isinstance(history["prompt"][3]["create_time"], int)


def test_features_models_internal_and_templates(server, http):
    features = http.get("/api/features").json()
    assert features["supports_preview_metadata"] is True and features["max_upload_size"] > 0
    folders = http.get("/api/experiment/models").json()
    assert {"name": "checkpoints", "folders": folders[[f["name"] for f in folders].index("checkpoints")]["folders"]} \
        in folders
    assert http.get("/api/experiment/models/nope").status_code == 404
    assert isinstance(http.get("/api/experiment/models/checkpoints").json(), list)
    assert http.get("/api/view_metadata/checkpoints", params={"filename": "none.safetensors"}).status_code == 404
    assert "checkpoints" in http.get("/internal/folder_paths").json()
    assert http.get("/internal/files/output").json() == []
    assert http.get("/internal/files/models").status_code == 400
    assert isinstance(http.get("/internal/logs").json(), str)
    assert set(http.get("/internal/logs/raw").json()) == {"entries", "size"}
    assert http.get("/api/i18n").json() == {} and http.get("/api/global_subgraphs").json() == {}
    templates = http.get("/api/workflow_templates").json()
    assert "txt2img" in templates["nodegraph"]
    ui = http.get("/api/workflow_templates/nodegraph/txt2img.json").json()
    sampler = next(n for n in ui["nodes"] if n["type"] == "KSampler")
    assert sampler["widgets_values"][:2] == [42, "fixed"] and len(ui["links"]) == 9
    assert http.get("/api/workflow_templates/nodegraph/..%2Fpyproject.toml").status_code == 404
    # the UI-format template reads back as the same workflow
    from nodegraph.formats.comfy_ui import to_native
    back = to_native(ui, server.state.env.registry)["nodes"]
    assert back["3"]["inputs"]["seed"] == 42 and back["3"]["inputs"]["model"] == {"node": "4", "output": 0}


def test_a_cached_rerun_sends_executed_for_its_output_node(server, http):
    """ComfyUI execution.py execute(): a cached node gets no `executing`, but `executed` with its
    cached UI output, so websocket clients collecting images see them again. The sequence for a
    fully cached prompt: execution_start, execution_cached {nodes: all}, executed (output node),
    execution_success, executing {node: null}."""
    from tests.server.test_comfy import comfy_socket, read_until_done

    ws = comfy_socket(server, "rerun")
    ws.recv()  # the greeting status
    body = json.dumps({"prompt": API_PROMPT, "client_id": "rerun"})
    first = http.post("/prompt", content=body).json()["prompt_id"]
    read_until_done(ws, first)
    second = http.post("/prompt", content=body).json()["prompt_id"]
    texts, _ = read_until_done(ws, second)
    ws.close()
    events = [(m["type"], m["data"]) for m in texts if m["data"].get("prompt_id") == second]
    assert [e for e, _ in events] == ["execution_start", "execution_cached", "executed", "progress_state",
                                      "execution_success", "executing"]
    assert events[1][1]["nodes"] == ["1", "2"]  # every cached node, as ComfyUI
    assert events[3][1]["nodes"]["2"]["state"] == "finished"  # finish_progress after the cached UI
    executed = events[2][1]
    assert executed["node"] == "2" and executed["output"]["images"][0]["type"] == "output"
