"""Which browser frontend the server shows at `/`: our editor (the default), ComfyUI's official
frontend from the `comfyui-frontend-package` wheel (`--frontend comfy`), or any built frontend
folder (`--frontend PATH`, a folder with an index.html). Nothing is vendored: the ComfyUI
frontend is an optional extra, `pip install 'nodegraph[comfy-frontend]'`.

ComfyUI's frontend is served as ComfyUI serves it (server.py): index.html at `/` with caching
off, every other file statically from the same folder, and `/templates/index.json` for its
templates dialog (ComfyUI serves that from the comfyui-workflow-templates package; we ship no
core templates, so it is an empty list and our workflows come as the "nodegraph" pack of
/api/workflow_templates).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

COMFY = "comfy"
COMFY_PACKAGE = "comfyui_frontend_package"
INSTALL_HINT = ("ComfyUI's frontend is not installed. Install it with\n"
                "    pip install 'nodegraph[comfy-frontend]'\n"
                "(or: pip install comfyui-frontend-package), then run `nodegraph serve --frontend comfy` again.")
NO_CACHE = {"Cache-Control": "no-cache", "Pragma": "no-cache", "Expires": "0"}


class FrontendMissing(SystemExit):
    """The requested frontend cannot be served; the message says how to get it."""


@dataclass(frozen=True)
class Frontend:
    kind: str  # "editor" | "comfy" | "folder"
    root: Path

    @property
    def is_comfy_style(self) -> bool:
        return self.kind != "editor"


def comfy_frontend_root() -> Path:
    try:
        import comfyui_frontend_package
    except ImportError as exc:
        raise FrontendMissing(INSTALL_HINT) from exc
    root = Path(comfyui_frontend_package.__file__).resolve().parent / "static"
    if not (root / "index.html").is_file():
        raise FrontendMissing(f"{COMFY_PACKAGE} is installed but has no static/index.html ({root}); reinstall it.")
    return root


def resolve(choice: str | Path | None, editor_dir: Path) -> Frontend:
    """`choice`: None (our editor), "comfy", or a folder holding a built frontend."""
    if choice is None:
        return Frontend("editor", editor_dir)
    if str(choice) == COMFY:
        return Frontend("comfy", comfy_frontend_root())
    folder = Path(choice).expanduser().resolve()
    if not (folder / "index.html").is_file():
        raise FrontendMissing(f"--frontend {choice}: no index.html in {folder}; pass a built frontend folder "
                              "or 'comfy' for ComfyUI's frontend.")
    return Frontend("folder", folder)


def mount_comfy_style(app: FastAPI, frontend: Frontend, extension_dirs: dict[str, Path]) -> None:
    """Serve a ComfyUI-style frontend: plugins' web folders at /extensions/<name>/, then the app."""
    root = frontend.root

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(root / "index.html", headers=NO_CACHE)

    if not (root / "templates" / "index.json").is_file():
        @app.get("/templates/index.json", include_in_schema=False)
        def core_templates() -> JSONResponse:
            return JSONResponse([])

    for name, folder in sorted(extension_dirs.items()):
        app.mount(f"/extensions/{name}", StaticFiles(directory=folder), name=f"extension-{name}")
    app.mount("/", StaticFiles(directory=root), name="frontend")

