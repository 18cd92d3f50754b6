"""nodegraph's own API lives under /v1; /api/* is left to ComfyUI's routes (its frontend calls
/api/prompt, /api/queue ...: see ComfyUI 0.8 server.py, which registers every route under both
/ and /api). Issue 12 moved the native routes there."""
from __future__ import annotations

from fastapi.routing import APIRoute

from nodegraph.server.app import PREFIX, native_router


def test_every_native_route_is_under_v1_and_none_under_api(server):
    routes = native_router(server.state).routes
    paths = {r.path for r in routes}
    assert len(routes) >= 25 and {"/v1/nodes", "/v1/jobs", "/v1/queue", "/v1/ws", "/v1/view"} <= paths
    assert all(p.startswith(PREFIX + "/") for p in paths), sorted(paths)
    with server.client() as http:
        for path in ("/api/nodes", "/api/jobs/x", "/api/status", "/api/convert"):
            assert http.get(path).status_code in (404, 405), path  # no native route answers there


def test_openapi_documents_the_v1_routes_and_docs_page_works(server):
    with server.client() as http:
        doc = http.get("/openapi.json").json()
        assert http.get("/docs").status_code == 200
    documented = set(doc["paths"])
    http_routes = [r for r in native_router(server.state).routes if isinstance(r, APIRoute)]
    assert {r.path for r in http_routes} <= documented
    assert not any(p.startswith("/api/") for p in documented)
    assert doc["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JobIn"}
