"""Pack HTTP routes (aiohttp style) served on nodegraph's FastAPI app.

A pack registers handlers with `@PromptServer.instance.routes.get("/my_pack/items")`; each is
served at its path and under /api (ComfyUI 0.8 serves every route at both), and receives a request
shim with aiohttp's reading API (match_info, query, rel_url, headers, json(), post(), read(),
text()). What it returns or raises (an aiohttp.web Response, ours or the real one) is converted
to a Starlette response. Routes go through the server's Guard like every other route, so a token
and the cross-site checks protect them too.
"""
from __future__ import annotations

import inspect
import logging
import re
from types import SimpleNamespace

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.staticfiles import StaticFiles

log = logging.getLogger("nodegraph.comfy_compat")
_REGEX_PARAM = re.compile(r"\{(\w+):([^}]*)\}")


def starlette_path(path: str) -> str:
    """aiohttp's `{name:regex}` -> Starlette's `{name}` (`{name:path}` for regexes that cross '/')."""
    def convert(match: re.Match) -> str:
        name, regex = match.groups()
        return f"{{{name}:path}}" if ".*" in regex or ".+" in regex or "/" in regex else f"{{{name}}}"

    return _REGEX_PARAM.sub(convert, path)


class ComfyRequest:
    """Enough of aiohttp.web.Request for packs' handlers."""

    def __init__(self, request: Request) -> None:
        self._request = request
        self.match_info = dict(request.path_params)
        self.query = request.query_params
        self.rel_url = SimpleNamespace(query=request.query_params, path=request.url.path,
                                       query_string=request.url.query)
        self.headers = request.headers
        self.method = request.method
        self.path = request.url.path
        self.url = request.url
        self.content_type = request.headers.get("content-type", "").split(";")[0].strip()
        self.cookies = request.cookies
        self.remote = request.client.host if request.client else None
        self.app = {}

    @property
    def can_read_body(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE")

    @property
    def body_exists(self) -> bool:
        return self.can_read_body

    async def read(self) -> bytes:
        return await self._request.body()

    async def text(self) -> str:
        return (await self._request.body()).decode()

    async def json(self, *, loads=None):
        import json

        return (loads or json.loads)(await self.text())

    async def post(self):
        """Form fields; uploaded files have .file, .filename and .content_type as in aiohttp."""
        form = await self._request.form()
        out = {}
        for key, value in form.multi_items():
            if hasattr(value, "filename") and hasattr(value, "file"):
                value = SimpleNamespace(file=value.file, filename=value.filename, content_type=value.content_type)
            out[key] = value
        return out


def to_starlette(result) -> Response:
    """Our aiohttp_web Response / real aiohttp responses / plain values as a Starlette response."""
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(status_code=200)
    if isinstance(result, (dict, list)):
        return JSONResponse(result)
    path = getattr(result, "path", None) or getattr(result, "_path", None)
    status = int(getattr(result, "status", 200))
    headers = {k: v for k, v in dict(getattr(result, "headers", {}) or {}).items()
               if k.lower() not in ("content-length", "content-type")}
    if path is not None and type(result).__name__ == "FileResponse":
        return FileResponse(str(path), status_code=status, headers=headers)
    body = getattr(result, "body", None)
    if body is None and getattr(result, "text", None) is not None:
        body = result.text
    if hasattr(body, "_value"):  # aiohttp payload objects
        body = body._value
    if isinstance(body, str):
        body = body.encode()
    return Response(content=body or b"", status_code=status, headers=headers,
                    media_type=getattr(result, "content_type", None))


def _endpoint(handler):
    async def endpoint(request: Request) -> Response:
        try:
            result = handler(ComfyRequest(request))
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            if hasattr(exc, "status") and (hasattr(exc, "body") or hasattr(exc, "text")):  # raised HTTP response
                return to_starlette(exc)
            raise
        return to_starlette(result)

    return endpoint


def mount(app, route_defs) -> int:
    """Add every recorded route (and static folder) at its path and under /api; returns the count."""
    count = 0
    for definition in route_defs:
        prefixes = ("", "/api")
        if hasattr(definition, "prefix"):  # a static folder
            for prefix in prefixes:
                app.mount(prefix + definition.prefix.rstrip("/"), StaticFiles(directory=str(definition.path)))
            count += 1
            continue
        methods = None if definition.method == "*" else [definition.method]
        for prefix in prefixes:
            app.add_route(prefix + starlette_path(definition.path), _endpoint(definition.handler),
                          methods=methods or ["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
        count += 1
    return count
