"""ComfyUI's per-user storage: /users, /settings, /userdata (ComfyUI 0.8 app/user_manager.py and
app/app_settings.py), kept under `<data dir>/user/<user>/`.

What the frontend keeps here: its settings (comfy.settings.json), saved workflows
(workflows/*.json), keybindings, templates it was told to remember. Single-user as ComfyUI
without --multi-user: every request is the "default" user.

Paths arrive URL-encoded in one path segment (`/userdata/workflows%2Fa.json`), so the routes
split the *raw* path: an encoded slash belongs to the file name, a literal one separates
`/move/`. Every path is resolved and must stay inside the user's folder (403 otherwise), as
ComfyUI's commonpath check does.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
from pathlib import Path
from urllib.parse import unquote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response

DEFAULT_USER = "default"
SETTINGS_FILE = "comfy.settings.json"


class UserFiles:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)  # <data dir>/user

    def user_dir(self) -> Path:
        return (self.root / DEFAULT_USER).resolve()

    def path(self, relative: str | None, create_parent: bool = True) -> Path | None:
        """A path inside the user's folder, or None when `relative` leads out of it."""
        base = self.user_dir()
        if relative is None:
            return base
        if "%" in relative:  # ComfyUI decodes a second time when the name still looks encoded
            relative = unquote(relative)
        if "\x00" in relative:
            return None
        target = Path(os.path.abspath(base / relative))
        if target != base and base not in target.parents:
            return None
        if create_parent:
            target.parent.mkdir(parents=True, exist_ok=True)
        return target

    # --- settings -----------------------------------------------------------------------------
    def settings(self) -> dict:
        path = self.path(SETTINGS_FILE, create_parent=False)
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # ComfyUI logs "corrupted" and serves {}
        return data if isinstance(data, dict) else {}

    def save_settings(self, settings: dict) -> None:
        path = self.path(SETTINGS_FILE)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(settings, indent=4), encoding="utf-8")
        tmp.replace(path)  # never a half-written settings file


def file_info(path: Path, relative_to: Path) -> dict:
    """ComfyUI's FileInfo: path (posix, relative), size, modified, created."""
    stat = path.stat()
    return {"path": path.relative_to(relative_to).as_posix(), "size": stat.st_size,
            "modified": stat.st_mtime, "created": stat.st_ctime}


async def _json_body(request: Request):
    raw = await request.body()
    try:
        return json.loads(raw) if raw.strip() else None
    except ValueError:
        return None


def _raw_tail(request: Request, prefix: str) -> str:
    """The still-encoded part of the request path after `prefix` (e.g. '/userdata/')."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    text = raw.decode("latin-1").split("?", 1)[0]
    index = text.find(prefix)
    return text[index + len(prefix):] if index >= 0 else ""


def router(files: UserFiles) -> APIRouter:
    api = APIRouter(tags=["ComfyUI compatible"])

    # --- users --------------------------------------------------------------------------------
    @api.get("/users", summary="User storage mode (single user: 'server' storage, migrated flag)")
    def get_users() -> dict:
        return {"storage": "server", "migrated": files.user_dir().exists()}

    @api.post("/users", summary="Add a user (refused: this server runs single-user)")
    async def post_users(request: Request) -> JSONResponse:
        body = await _json_body(request)
        name = body.get("username") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name.strip():
            return JSONResponse({"error": "username not provided"}, status_code=400)
        # ComfyUI without --multi-user already has the one user it will ever use
        return JSONResponse({"error": "this server runs single-user (ComfyUI without --multi-user)"},
                            status_code=400)

    # --- settings -----------------------------------------------------------------------------
    @api.get("/settings", summary="Every setting of the user")
    def get_settings() -> dict:
        return files.settings()

    @api.get("/settings/{setting_id}", summary="One setting (null if unset)")
    def get_setting(setting_id: str):
        return JSONResponse(files.settings().get(setting_id))

    @api.post("/settings", summary="Merge settings into the stored ones")
    async def post_settings(request: Request) -> Response:
        body = await _json_body(request)
        if not isinstance(body, dict):
            return PlainTextResponse("a JSON object of settings is required", status_code=400)
        files.save_settings({**files.settings(), **body})
        return Response(status_code=200)

    @api.post("/settings/{setting_id}", summary="Store one setting (body: its JSON value)")
    async def post_setting(setting_id: str, request: Request) -> Response:
        raw = await request.body()
        try:
            value = json.loads(raw)
        except ValueError:
            return PlainTextResponse("the body must be the setting's JSON value", status_code=400)
        settings = files.settings()
        settings[setting_id] = value
        files.save_settings(settings)
        return Response(status_code=200)

    # --- userdata -----------------------------------------------------------------------------
    @api.get("/userdata", summary="List files under dir (recurse, full_info, split as ComfyUI)")
    def list_userdata(dir: str = "", recurse: str = "", full_info: str = "", split: str = "") -> Response:
        if not dir:
            return PlainTextResponse("Directory not provided", status_code=400)
        path = files.path(dir, create_parent=False)
        if path is None:
            return PlainTextResponse("Invalid directory", status_code=403)
        if not path.exists():
            return PlainTextResponse("Directory not found", status_code=404)
        deep = recurse.lower() == "true"
        pattern = os.path.join(glob.escape(str(path)), "**", "*") if deep else os.path.join(glob.escape(str(path)), "*")
        out = []
        for full in glob.glob(pattern, recursive=deep):
            full_path = Path(full)
            if not full_path.is_file():
                continue
            if full_info.lower() == "true":
                out.append(file_info(full_path, path))
                continue
            rel = full_path.relative_to(path).as_posix()
            out.append([rel, *rel.split("/")] if split.lower() == "true" else rel)
        return JSONResponse(out)

    @api.get("/v2/userdata", summary="Files and folders under path, folders first")
    def list_userdata_v2(path: str = "") -> Response:
        base = files.user_dir()
        target = files.path(unquote(path), create_parent=False) if path else base
        if target is None:
            return PlainTextResponse("Invalid path requested", status_code=400)
        if not target.exists():
            return JSONResponse([]) if target == base else PlainTextResponse("Requested path not found", 404)
        if not target.is_dir():
            return PlainTextResponse("Requested path is not a directory", status_code=400)
        out = []
        for root, dirs, names in os.walk(target):
            for name in dirs:
                out.append({"name": name, "path": Path(root, name).relative_to(base).as_posix(), "type": "directory"})
            for name in names:
                entry = Path(root, name)
                item = {"name": name, "path": entry.relative_to(base).as_posix(), "type": "file"}
                try:
                    stat = entry.stat()
                    item.update(size=stat.st_size, modified=stat.st_mtime)
                except OSError:
                    pass
                out.append(item)
        out.sort(key=lambda x: (x["type"] != "directory", x["name"].lower()))
        return JSONResponse(out)

    def resolve(encoded: str, must_exist: bool) -> Path | Response:
        name = unquote(encoded)
        if not name:
            return Response(status_code=400)
        path = files.path(name)
        if path is None:
            return Response(status_code=403)
        if must_exist and not path.exists():
            return Response(status_code=404)
        return path

    def answer(path: Path, full: str) -> JSONResponse:
        base = files.user_dir()
        return JSONResponse(file_info(path, base) if full.lower() == "true" else path.relative_to(base).as_posix())

    @api.get("/userdata/{file:path}", summary="Read a user file")
    def get_userdata(request: Request, file: str) -> Response:
        path = resolve(_raw_tail(request, "/userdata/"), must_exist=True)
        if not isinstance(path, Path):
            return path
        if not path.is_file():
            return Response(status_code=404)
        return FileResponse(path)

    @api.post("/userdata/{file:path}",
              summary="Write a user file (overwrite=false: 409 if it exists), or move one: /userdata/{file}/move/{dest}")
    async def post_userdata(request: Request, file: str, overwrite: str = "true", full_info: str = "false") -> Response:
        tail = _raw_tail(request, "/userdata/")
        if "/move/" in tail:
            source_name, dest_name = tail.split("/move/", 1)
            source = resolve(source_name, must_exist=True)
            if not isinstance(source, Path):
                return source
            dest = resolve(dest_name, must_exist=False)
            if not isinstance(dest, Path):
                return dest
            if overwrite == "false" and dest.exists():
                return PlainTextResponse("File already exists", status_code=409)
            shutil.move(source, dest)
            return answer(dest, full_info)
        path = resolve(tail, must_exist=False)
        if not isinstance(path, Path):
            return path
        if overwrite == "false" and path.exists():
            return PlainTextResponse("File already exists", status_code=409)
        if path.is_dir():
            return PlainTextResponse("Invalid filename: a folder has that name", status_code=400)
        try:
            path.write_bytes(await request.body())
        except OSError:
            return PlainTextResponse('Invalid filename. Please avoid special characters like :\\/*?"<>|', 400)
        return answer(path, full_info)

    @api.delete("/userdata/{file:path}", summary="Delete a user file")
    def delete_userdata(request: Request, file: str) -> Response:
        path = resolve(_raw_tail(request, "/userdata/"), must_exist=True)
        if not isinstance(path, Path):
            return path
        if not path.is_file():
            return Response(status_code=404)
        path.unlink()
        return Response(status_code=204)

    return api
