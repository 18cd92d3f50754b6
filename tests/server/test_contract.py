"""The models in nodegraph/server/schemas.py are what the editor's TypeScript types are generated
from (issue 14), so they must describe what the server really sends: node schemas from /v1/nodes
and every event of /v1/ws, checked here against real responses and frames."""
from __future__ import annotations

import json

from pydantic import TypeAdapter

from nodegraph.server.openapi_export import REF, native_openapi
from nodegraph.server.schemas import EVENTS, PreviewFrame, ServerEvent

from tests.server.helpers import Events, L, picture_workflow


def submit(http, workflow: dict, client_id: str) -> str:
    r = http.post("/v1/jobs", json={"workflow": workflow, "client_id": client_id})
    assert r.status_code == 200, r.text
    return r.json()["job_id"]


def test_nodes_route_serves_every_spec_schema_unchanged(server, http):
    served = http.get("/v1/nodes").json()
    env = server.state.env
    assert set(served) == set(env.registry.specs)
    for name, spec in env.registry.specs.items():  # the response model neither adds nor drops a key
        assert served[name] == json.loads(json.dumps(spec.schema(env))), name


def test_every_websocket_event_matches_its_declared_model(server, http):
    events = Events(server.ws_url, "contract")
    try:
        done = submit(http, picture_workflow(steps=2, size=8), "contract")  # progress, previews, executed
        events.until_done(done)
        events.until_done(submit(http, picture_workflow(steps=2, size=8), "contract"))  # all cached
        events.until_done(submit(http, {"version": 1, "nodes": {
            "1": {"type": "GradientSteps", "inputs": {"steps": 1}},
            "2": {"type": "Explode", "inputs": {"image": L("1"), "message": "boom"}},
            "3": {"type": "SaveImage", "inputs": {"images": L("2")}}}}, "contract"))
        slow = submit(http, picture_workflow(steps=400, delay=0.02, red=3), "contract")
        events.read_until(lambda e, d: e == "progress" and d["prompt_id"] == slow)
        assert http.post("/v1/interrupt").json() == {"interrupted": True}
        events.until_done(slow)
    finally:
        events.close()
    frames = TypeAdapter(ServerEvent)
    for event, data in events.events:
        assert event in EVENTS, f"event {event!r} is not declared in nodegraph/server/schemas.py"
        frames.validate_python({"type": event, "data": data})  # raises on a missing or undeclared key
    seen = {event for event, _ in events.events}
    assert seen >= set(EVENTS) - {"warning"}, seen  # warnings need a node that warns
    assert events.previews
    for preview in events.previews:
        PreviewFrame.model_validate(preview)


def test_exported_document_holds_the_v1_routes_and_every_schema_they_name():
    doc = native_openapi()
    assert doc["paths"] and all(path.startswith("/v1/") for path in doc["paths"])
    schemas = doc["components"]["schemas"]
    assert {"ServerEvent", "PreviewFrame", "NodeSchema", "JobIn", "JobOut"} <= set(schemas)
    refs = set()
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("$ref"), str):
                refs.add(item["$ref"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    assert {ref[len(REF):] for ref in refs} <= set(schemas)
