"""The part of aiohttp.web that ComfyUI packs' HTTP routes use, for when aiohttp is not installed.

Packs write `from aiohttp import web` and answer with `web.json_response(...)`, `web.Response(...)`,
`web.FileResponse(path)` or raise `web.HTTPNotFound()`; nodegraph serves those routes on its own
(FastAPI) app, so only these names are needed (routes.py converts them, and real aiohttp objects
too when aiohttp is installed). Installed as `aiohttp` / `aiohttp.web` only while ComfyUI packs are
loaded and only when aiohttp itself cannot be imported.
"""
from __future__ import annotations

import json as _json
from pathlib import Path

from .surface import unsupported


class Response(Exception):
    """A response; an exception too, so that HTTPException subclasses can be raised (aiohttp's design)."""

    default_status = 200

    def __init__(self, *, body=None, status=None, reason=None, text=None, headers=None, content_type=None,
                 charset=None) -> None:
        super().__init__(reason or "")
        self.status = status if status is not None else self.default_status
        self.headers = dict(headers or {})
        if text is not None:
            body = text.encode(charset or "utf-8")
            content_type = content_type or "text/plain"
        self.body = body if body is not None else b""
        self.content_type = content_type or ("application/octet-stream" if body is not None else "text/plain")
        self.text = text


def json_response(data=None, *, text=None, body=None, status=200, reason=None, headers=None,
                  content_type="application/json", dumps=_json.dumps) -> Response:
    if data is not None:
        text = dumps(data)
    return Response(text=text, body=body, status=status, reason=reason, headers=headers, content_type=content_type)


class FileResponse(Response):
    def __init__(self, path, chunk_size=256 * 1024, status=200, reason=None, headers=None) -> None:
        super().__init__(status=status, reason=reason, headers=headers)
        self.path = Path(path)


class HTTPException(Response):
    default_status = 500

    def __init__(self, *, headers=None, reason=None, text=None, content_type=None, body=None) -> None:
        super().__init__(status=self.default_status, headers=headers, reason=reason, body=body,
                         text=text if text is not None or body is not None else f"{self.default_status}: {reason or type(self).__name__}",
                         content_type=content_type)


def _http(name: str, status: int) -> type:
    return type(name, (HTTPException,), {"default_status": status})


HTTPOk = _http("HTTPOk", 200)
HTTPBadRequest = _http("HTTPBadRequest", 400)
HTTPUnauthorized = _http("HTTPUnauthorized", 401)
HTTPForbidden = _http("HTTPForbidden", 403)
HTTPNotFound = _http("HTTPNotFound", 404)
HTTPMethodNotAllowed = _http("HTTPMethodNotAllowed", 405)
HTTPConflict = _http("HTTPConflict", 409)
HTTPRequestEntityTooLarge = _http("HTTPRequestEntityTooLarge", 413)
HTTPInternalServerError = _http("HTTPInternalServerError", 500)


class HTTPFound(HTTPException):
    default_status = 302

    def __init__(self, location, **kw) -> None:
        super().__init__(**kw)
        self.headers["Location"] = str(location)


class RouteDef:
    def __init__(self, method: str, path: str, handler, kwargs=None) -> None:
        self.method, self.path, self.handler, self.kwargs = method, path, handler, kwargs or {}


class StaticDef:
    def __init__(self, prefix: str, path, kwargs=None) -> None:
        self.prefix, self.path, self.kwargs = prefix, Path(path), kwargs or {}


class RouteTableDef(list):
    """aiohttp's route table: decorators record (method, path, handler)."""

    def route(self, method: str, path: str, **kwargs):
        def register(handler):
            self.append(RouteDef(method.upper(), path, handler, kwargs))
            return handler

        return register

    def get(self, path, **kw):
        return self.route("GET", path, **kw)

    def post(self, path, **kw):
        return self.route("POST", path, **kw)

    def put(self, path, **kw):
        return self.route("PUT", path, **kw)

    def patch(self, path, **kw):
        return self.route("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.route("DELETE", path, **kw)

    def head(self, path, **kw):
        return self.route("HEAD", path, **kw)

    def view(self, path, **kw):
        return self.route("*", path, **kw)

    def static(self, prefix, path, **kwargs) -> None:
        self.append(StaticDef(prefix, path, kwargs))


# aiohttp's module-level route definitions, for app.add_routes([...]) / router.add_routes
def static(prefix: str, path, **kwargs) -> StaticDef:
    return StaticDef(prefix, path, kwargs)


def route(method: str, path: str, handler, **kwargs) -> RouteDef:
    return RouteDef(method.upper(), path, handler, kwargs)


def get(path: str, handler, **kwargs) -> RouteDef:
    return route("GET", path, handler, **kwargs)


def post(path: str, handler, **kwargs) -> RouteDef:
    return route("POST", path, handler, **kwargs)


def put(path: str, handler, **kwargs) -> RouteDef:
    return route("PUT", path, handler, **kwargs)


def delete(path: str, handler, **kwargs) -> RouteDef:
    return route("DELETE", path, handler, **kwargs)


Request = BaseRequest = None  # replaced below: the request shim lives in routes.py


def _late_names() -> None:
    global Request, BaseRequest
    from .routes import ComfyRequest

    Request = BaseRequest = ComfyRequest


_late_names()
__getattr__ = unsupported(__name__)
