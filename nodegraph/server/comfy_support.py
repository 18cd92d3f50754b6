"""The routes ComfyUI's frontend calls besides the prompt protocol: features, extensions, i18n,
workflow templates, global subgraphs, the experiment/models listing, view_metadata, and the
/internal routes (logs, folder paths, file lists).

Sources (ComfyUI 0.8): server.py (features, extensions, view_metadata), app/custom_node_manager.py
(workflow_templates, i18n), app/subgraph_manager.py (global_subgraphs), app/model_manager.py
(experiment/models), api_server/routes/internal/internal_routes.py (internal, mounted at
/internal only: ComfyUI's /api prefixing skips sub-apps).

Plugins take ComfyUI's places: a plugin module's WEB_DIRECTORY (relative to its folder) is served
at /extensions/<plugin>/, its example_workflows/ (or example, examples, workflow, workflows)
folder lists under /workflow_templates, its locales/<lang>/main.json feed /i18n, its
subgraphs/*.json feed /global_subgraphs. Our own workflows/ folder is the "nodegraph" template
pack; it holds native workflows, sent to the frontend in its UI format (comfy_templates.py).
"""
from __future__ import annotations

import collections
import datetime
import hashlib
import json
import logging
import shutil
import struct
import sys
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from . import files

EXAMPLE_FOLDERS = ("example_workflows", "example", "examples", "workflow", "workflows")
LOCALE_EXTRAS = ("nodeDefs", "commands", "settings")
OWN_TEMPLATES = "nodegraph"
MAX_METADATA_HEADER = 1024 * 1024  # view_metadata reads at most this much header, as ComfyUI


# --- server feature flags (comfy_api/feature_flags.py) -----------------------------------------
def server_features(limits) -> dict:
    # ComfyUI also announces extension.manager.supports_v4; there is no manager here to call
    return {"supports_preview_metadata": True, "max_upload_size": limits.max_upload_bytes}


# --- plugins' folders ---------------------------------------------------------------------------
def plugin_dirs(registry) -> dict[str, Path]:
    """Plugin name -> its folder, for the plugins the registry loaded (packages and .py files)."""
    out: dict[str, Path] = {}
    for module_name in registry.loaded_modules:
        module = sys.modules.get(module_name)
        path = getattr(module, "__file__", None)
        if not path:
            continue
        folder = Path(path).parent
        name = module_name.rsplit(".", 1)[-1]
        if Path(path).name != "__init__.py":  # a single-file plugin: its folder is shared
            name = Path(path).stem
        out[name] = folder
    return out


def web_dirs(registry) -> dict[str, Path]:
    out = {}
    for name, folder in plugin_dirs(registry).items():
        module = next((sys.modules[m] for m in registry.loaded_modules
                       if m.rsplit(".", 1)[-1] == name and m in sys.modules), None)
        web = getattr(module, "WEB_DIRECTORY", None)
        if isinstance(web, str) and (folder / web).is_dir():
            out[name] = (folder / web).resolve()
    return out


def example_dirs(registry) -> dict[str, Path]:
    out = {}
    for name, folder in plugin_dirs(registry).items():
        if (folder / "__init__.py").is_file():  # only packages have a folder of their own
            for sub in EXAMPLE_FOLDERS:
                if (folder / sub).is_dir():
                    out[name] = (folder / sub).resolve()
                    break
    return out


def _inside(root: Path, relative: str) -> Path | None:
    target = (root / relative).resolve()
    return target if root in target.parents and target.is_file() else None


def _merge(into: dict, more: dict) -> dict:
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def translations(registry) -> dict:
    out: dict = {}
    for name, folder in sorted(plugin_dirs(registry).items()):
        locales = folder / "locales"
        if not (folder / "__init__.py").is_file() or not locales.is_dir():
            continue
        for lang in sorted(p for p in locales.iterdir() if p.is_dir()):
            entry = _read_json(lang / "main.json")
            for extra in LOCALE_EXTRAS:
                data = _read_json(lang / f"{extra}.json")
                if data:
                    entry[extra] = data
            if entry:
                _merge(out.setdefault(lang.name, {}), entry)
    return out


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# --- logs (app/logger.py keeps the last 300 writes as {t, m}) ------------------------------------
class LogBuffer(logging.Handler):
    def __init__(self, capacity: int = 300) -> None:
        super().__init__()
        self.entries: collections.deque = collections.deque(maxlen=capacity)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.entries.append({"t": datetime.datetime.fromtimestamp(record.created).isoformat(),
                                 "m": self.format(record) + "\n"})
        except Exception:  # a log line that cannot be formatted must not break the caller
            pass


def safetensors_metadata(path: Path) -> dict | None:
    """The __metadata__ of a .safetensors header, or None (too large, unreadable, none)."""
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > MAX_METADATA_HEADER:
                return None
            header = json.loads(f.read(length))
    except (OSError, ValueError, struct.error):
        return None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else None


# --- routes -------------------------------------------------------------------------------------
def router(state, frontend_root: Path | None) -> APIRouter:
    api = APIRouter(tags=["ComfyUI compatible"])
    env = state.env

    @api.get("/features", summary="The server's feature flags (also sent on the websocket)")
    def get_features() -> dict:
        return server_features(state.limits)

    @api.get("/extensions", summary="Frontend extension scripts: the frontend's own and each plugin's web folder")
    def get_extensions() -> list[str]:
        out = []
        if frontend_root is not None and (frontend_root / "extensions").is_dir():
            out += ["/" + p.relative_to(frontend_root).as_posix()
                    for p in sorted((frontend_root / "extensions").rglob("*.js"))]
        for name, folder in web_dirs(env.registry).items():
            out += [f"/extensions/{quote(name)}/{p.relative_to(folder).as_posix()}" for p in sorted(folder.rglob("*.js"))]
        return out

    @api.get("/i18n", summary="Translations from plugins' locales folders")
    def get_i18n() -> dict:
        return translations(env.registry)

    @api.get("/workflow_templates", summary="Template packs -> workflow names (ours: 'nodegraph')")
    def get_workflow_templates() -> dict:
        out = {}
        own = state.workflows_dir
        if own is not None and own.is_dir():
            names = sorted(p.stem for p in own.glob("*.json"))
            if names:
                out[OWN_TEMPLATES] = names
        for name, folder in example_dirs(env.registry).items():
            names = sorted(p.stem for p in folder.glob("*.json"))
            if names:
                out[name] = names
        return out

    @api.get("/workflow_templates/{pack}/{filename}", summary="One template (UI format) or a file beside it")
    def get_workflow_template(pack: str, filename: str) -> Response:
        if pack == OWN_TEMPLATES and state.workflows_dir is not None:
            folder = state.workflows_dir.resolve()
            path = _inside(folder, filename)
            if path is None:
                return Response(status_code=404)
            if path.suffix == ".json":
                from .comfy_templates import template_json

                try:
                    return JSONResponse(template_json(path, env.registry, env))
                except Exception as exc:  # a broken example must not be a 500 without a word
                    return JSONResponse({"error": f"{filename}: {exc}"}, status_code=500)
            return FileResponse(path)
        folder = example_dirs(env.registry).get(pack)
        path = _inside(folder, filename) if folder is not None else None
        return FileResponse(path) if path is not None else Response(status_code=404)

    @api.get("/global_subgraphs", summary="Subgraph blueprints from plugins' subgraphs folders")
    def get_global_subgraphs() -> dict:
        return {key: {k: v for k, v in entry.items() if k not in ("path", "data")}
                for key, entry in _subgraphs(env.registry).items()}

    @api.get("/global_subgraphs/{subgraph_id}", summary="One subgraph blueprint with its data (null if unknown)")
    def get_global_subgraph(subgraph_id: str) -> JSONResponse:
        entry = _subgraphs(env.registry).get(subgraph_id)
        if entry is None:
            return JSONResponse(None)
        data = Path(entry["path"]).read_text(encoding="utf-8")
        return JSONResponse({**{k: v for k, v in entry.items() if k != "path"}, "data": data})

    @api.get("/experiment/models", summary="Model folder kinds with their search paths")
    def get_model_folders() -> list[dict]:
        return [{"name": kind, "folders": [str(p) for p in env.folders.search_paths(kind)]}
                for kind in files.model_kinds(env) if kind not in ("configs", "custom_nodes")]

    @api.get("/experiment/models/{folder}", summary="Model files of a kind: name, pathIndex, modified, created, size")
    def get_models(folder: str) -> Response:
        if folder not in files.model_kinds(env):
            return Response(status_code=404)
        out = []
        for index, root in enumerate(env.folders.search_paths(folder)):
            if not root.is_dir():
                continue
            for path in sorted(root.rglob("*")):
                if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in _model_suffixes():
                    stat = path.stat()
                    out.append({"name": path.relative_to(root).as_posix(), "pathIndex": index,
                                "modified": stat.st_mtime, "created": stat.st_ctime, "size": stat.st_size})
        return JSONResponse(out)

    @api.get("/view_metadata/{folder}", summary="A .safetensors model's __metadata__ (404 if none)")
    def view_metadata(folder: str, filename: str | None = None) -> Response:
        if not filename or not filename.endswith(".safetensors") or folder not in files.model_kinds(env):
            return Response(status_code=404)
        try:
            path = env.folders.find(folder, filename)
        except (ValueError, OSError):
            return Response(status_code=404)
        meta = safetensors_metadata(path)
        return JSONResponse(meta) if meta is not None else Response(status_code=404)

    return api


def _model_suffixes() -> tuple[str, ...]:
    from ..folders import MODEL_EXTENSIONS

    return MODEL_EXTENSIONS


def _subgraphs(registry) -> dict[str, dict]:
    out = {}
    for name, folder in plugin_dirs(registry).items():
        if not (folder / "__init__.py").is_file():
            continue
        for path in sorted((folder / "subgraphs").glob("*.json")):
            key = hashlib.sha256(f"custom_node{path.as_posix()}".encode()).hexdigest()
            out[key] = {"source": "custom_node", "name": path.stem, "path": str(path),
                        "info": {"node_pack": f"custom_nodes.{name}"}}
    return out


def internal_router(state, logs: LogBuffer) -> APIRouter:
    """ComfyUI's /internal routes ("for ComfyUI frontend use only")."""
    api = APIRouter(prefix="/internal", tags=["ComfyUI compatible"])
    env = state.env

    @api.get("/logs", summary="Recent server log lines as one string")
    def get_logs() -> str:
        return "".join(f"{e['t']} - {e['m']}" for e in logs.entries)

    @api.get("/logs/raw", summary="Recent server log entries and the terminal size")
    def get_raw_logs() -> dict:
        size = shutil.get_terminal_size((80, 24))
        return {"entries": list(logs.entries), "size": {"cols": size.columns, "rows": size.lines}}

    @api.patch("/logs/subscribe", summary="Accepted; log lines are not streamed over the websocket here")
    async def subscribe_logs(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            body["clientId"], body["enabled"]
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "clientId and enabled are required"}, status_code=400)
        return Response(status_code=200)

    @api.get("/folder_paths", summary="Model kinds -> their folders")
    def get_folder_paths() -> dict:
        return {kind: [str(p) for p in env.folders.search_paths(kind)] for kind in files.model_kinds(env)}

    @api.get("/files/{directory_type}", summary="File names in the input, output or temp folder, newest first")
    def get_files(directory_type: str) -> JSONResponse:
        if directory_type not in files.IMAGE_KINDS:
            return JSONResponse({"error": "Invalid directory type"}, status_code=400)
        folder = env.folders.dir_for(directory_type)
        entries = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")] if folder.is_dir() else []
        entries.sort(key=lambda p: -p.stat().st_mtime)
        return JSONResponse([p.name for p in entries])

    return api
