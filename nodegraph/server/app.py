"""The HTTP app: native API under /v1, ComfyUI's routes at the root, the editor as static files.

Native routes (documented in the OpenAPI schema at /openapi.json, browsable at /docs):

    GET    /v1/nodes                       {type name: NodeSpec.schema(env)}
    POST   /v1/jobs                        {workflow, client_id?, extra?, number?, front?, outputs?}
                                           -> {job_id, job_ids, number} | 400 {detail, errors: [issue...]}
    GET    /v1/jobs/{job_id}               job {job_id, status, workflow, outputs, errors, created, started, finished}
    GET    /v1/queue?offset=&limit=        {running: [job], pending: [a page of jobs], pending_total, paused}
    DELETE /v1/queue/{job_id}              remove a pending job (interrupt it if it is running)
    POST   /v1/queue/clear                 remove every pending job
    POST   /v1/queue/{job_id}/front        move a pending job to the front
    POST   /v1/queue/pause | resume        stop / restart taking jobs (the running one finishes)
    GET    /v1/status                      {queue_remaining, paused, running, worker_alive, clients}
    GET    /v1/history?offset=&limit=      {items: [job] newest first, total}
    DELETE /v1/history/{job_id}, POST /v1/history/clear
    POST   /v1/interrupt                   {job_id?} -> {interrupted}
    GET    /v1/models, /v1/models/{folder}
    POST   /v1/upload/image                multipart image, subfolder?, type?, overwrite? -> {name, subfolder, type}
    POST   /v1/upload/mask                 same plus original_ref (JSON {filename, subfolder, type})
    GET    /v1/view?filename=&subfolder=&type=
    POST   /v1/free                        {unload_models?, free_memory?}
    GET    /v1/cluster                     workers (device, loaded models, current job, throughput)
    GET    /v1/system_stats                ComfyUI's {system, devices} plus queue, cache and device manager
    POST   /v1/convert                     {workflow: any format} -> {workflow: native} | 400
    POST   /v1/export/comfy_api            {workflow} -> ComfyUI API prompt | 400
    POST   /v1/validate                    {workflow} -> {ok, errors}
    GET    /v1/workflows, /v1/workflows/{name}   example workflows (workflows/*.json), as native JSON; opening
                                           one copies the pictures it names (shipped next to it) into input/
    WS     /v1/ws?client_id=               text {"type", "data"} events; binary msgpack previews
    POST   /v1/login                       {token} -> session cookie (browsers on a token server)

ComfyUI-compatible routes: see comfy_compat.py. Everything but the websockets runs through the
Guard middleware (security.py): token, cross-site, content-type and body-size checks;
websockets get the token and cross-site checks.
"""
from __future__ import annotations

import logging
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI, File, Form, HTTPException, Query, UploadFile, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..formats import WorkflowFormatError, comfy_api, load_workflow
from ..queue import JobStore
from . import comfy_compat, comfy_support, examples, files
from . import frontend as frontends
from .comfy_support import LogBuffer
from .events import NATIVE, STATUS_DELAY, EventHub, serve_socket
from .models import (ClusterOut, ConvertOut, CountOut, DeletedOut, ErrorOut, FreeIn, FreeOut, HistoryOut, InterruptIn,
                     InterruptOut, JobIn, JobOut, JobSubmitted, ModelInfoOut, OkOut, QueueOut, StatusOut, UploadOut,
                     ValidateOut, WorkflowIn)
from .schemas import NodeSchema, extra_component_schemas
from .security import Guard, check_token, login_router
from .service import MAX_ID_LENGTH, Limits, ServerState, SubmitError
from ..images import remove_partial_files
from ..workers import ExecutionBackend, InProcessBackend, ProcessBackend
from ..workers.process import DEFAULT_INTERRUPT_GRACE
from .worker import DEFAULT_MAX_BATCH_JOBS, default_batch_window_ms, jsonable

REPO_ROOT = Path(__file__).resolve().parents[2]
DB_NAME = "nodegraph-jobs.sqlite3"
PREFIX = "/v1"  # the native API's own prefix: ComfyUI's frontend uses /api/* for ComfyUI's routes
_BAD_REQUEST = {400: {"model": ErrorOut}}

API_DESCRIPTION = """Node-graph workflow engine: the native API under `/v1`, ComfyUI-compatible routes at the root.

**Auth**: a server started with a token wants it on every request and websocket:
`Authorization: Bearer <token>`, or the session cookie `POST /v1/login {token}` sets (browsers);
websockets also take `?token=<token>` (nowhere else: query strings end up in logs).

**Cross-site**: requests from other sites' pages (`Origin: null` or a foreign origin) are refused
unless they carry the token; bodies of state-changing requests are JSON (multipart for uploads).

**Events** (websockets, not listed below):
- native `/v1/ws?client_id=X` — text frames `{"type": event, "data": {...}}`; binary frames are msgpack
  `{"type": "preview", "prompt_id", "node", "image": PNG bytes}`;
- ComfyUI `/ws?clientId=X` — the same events in ComfyUI's shapes; binary previews are
  `>I 1` + `>I 2` (PNG) + PNG bytes.

Events: `status {queue_remaining, paused}` (to everyone; ComfyUI: `{status: {exec_info: {queue_remaining}}}`),
and for the jobs a client submitted (with its client_id; jobs without one go to everyone):
`execution_start`, `execution_cached {nodes}`, `executing {node}`, `progress {node, value, max}`,
`executed {node, output}`, `execution_error {node_id, node_type, exception_message, exception_type, traceback}`,
`execution_interrupted {node_id, node_type}`, `execution_success`, and finally `executing {node: null}`
(sent after the job's history entry is stored). Every job event carries `prompt_id` (= job_id) and
`timestamp` (ms).
"""

MISSING_UI_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>nodegraph</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>nodegraph server is running</h1>
<p>The editor has not been built, so there is nothing to show here yet. Build it with</p>
<pre>cd ui &amp;&amp; npm ci &amp;&amp; npm run build</pre>
<p>(expected in <code>{ui_dir}</code>) and reload this page.</p>
<p>The HTTP API works without it: see <a href="/docs">/docs</a> and <a href="/openapi.json">/openapi.json</a>.</p>
</body></html>"""


def create_app(env, *, token: str | None = None, data_dir: str | Path = ".", ui_dir: str | Path | None = None,
               workflows_dir: str | Path | None = None, loopback_only: bool = True,
               limits: Limits | None = None, allowed_origins: tuple[str, ...] = (),
               stop_timeout: float = 10.0, frontend: str | Path | None = None, in_process: bool = False,
               interrupt_grace: float = DEFAULT_INTERRUPT_GRACE, backend: ExecutionBackend | None = None,
               preview_method: str = "none", disable_metadata: bool = False, batch_window_ms: float | None = None,
               max_batch_jobs: int = DEFAULT_MAX_BATCH_JOBS) -> FastAPI:
    """The ASGI app. `loopback_only`: the server listens on loopback only (adds a Host check when
    there is no token). `allowed_origins`: other sites' pages trusted as if they were the server's
    own (scheme://host:port). `stop_timeout`: how long shutdown waits for the running job to
    stop at an interrupt before putting it back in the queue as it is. `limits` (default: the
    environment's) become the environment's, so nodes see the same. The job database is
    `data_dir`/nodegraph-jobs.sqlite3. `frontend`: None (our editor, from `ui_dir`), "comfy"
    (ComfyUI's frontend package) or a built frontend folder. Jobs run in a supervised worker
    process, or on a thread of this process with `in_process` (or on `backend`); a node still
    running `interrupt_grace` seconds after an interrupt has its worker killed. Cross-job batching:
    queued jobs taken within `batch_window_ms` (None: 20 on CUDA, 0 = off elsewhere) run together,
    at most `max_batch_jobs` at once (nodegraph/server/worker.py)."""
    token = check_token(token)
    if limits is not None:
        env.limits = limits
    front = frontends.resolve(frontend, Path(ui_dir) if ui_dir is not None else REPO_ROOT / "ui" / "dist")
    store = JobStore(Path(data_dir) / DB_NAME)
    logs = LogBuffer()
    if backend is None:
        backend = InProcessBackend(env) if in_process else ProcessBackend(env, interrupt_grace=interrupt_grace)
    state = ServerState(env=env, store=store, hub=EventHub(), token=token, ui_dir=front.root,
                        workflows_dir=Path(workflows_dir) if workflows_dir is not None else REPO_ROOT / "workflows",
                        limits=env.limits, backend=backend, preview_method=preview_method,
                        disable_metadata=disable_metadata,
                        batch_window=default_batch_window_ms(env) / 1000 if batch_window_ms is None
                        else batch_window_ms / 1000, max_batch_jobs=max_batch_jobs)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        import asyncio

        state.hub.attach(asyncio.get_running_loop())
        logging.getLogger("nodegraph").addHandler(logs)
        for kind in ("output", "temp"):  # what a killed worker left half-written
            remove_partial_files(env.folders.dir_for(kind))
        state.worker.start()
        try:
            yield
        finally:
            await run_in_threadpool(state.worker.stop, stop_timeout)
            if state.worker.alive:  # a node that ignores interrupts: its jobs are re-queued, not lost
                for running in list(state.worker.group.values()):
                    store.requeue(running.job_id)
            await asyncio.sleep(2 * STATUS_DELAY)  # the status the worker just posted reads the store: let it go
            store.close()
            logging.getLogger("nodegraph").removeHandler(logs)

    app = FastAPI(title="nodegraph", version=__version__, lifespan=lifespan, description=API_DESCRIPTION)
    app.state.nodegraph = state

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the input, which fails to encode when it holds NaN
        return JSONResponse({"detail": jsonable(exc.errors())}, status_code=422)

    app.add_middleware(Guard, token=token, loopback_only=loopback_only, max_body_bytes=state.limits.max_body_bytes,
                       allowed_origins=tuple(allowed_origins))
    app.include_router(login_router(token))
    comfy_compat.mount(app, state, data_dir, front.root if front.is_comfy_style else None, logs)
    app.include_router(native_router(state))
    for hook in env.registry.server_hooks:  # plugins' own routes (ComfyUI packs'), before the static catch-all
        hook(app, state)
    if front.is_comfy_style:
        frontends.mount_comfy_style(app, front, comfy_support.web_dirs(env.registry))
    else:
        _static(app, state)
    _document_extra_schemas(app)
    return app


def _document_extra_schemas(app: FastAPI) -> None:
    """Add the schemas no route names (websocket events, the native workflow) to the OpenAPI components."""
    build = app.openapi

    def openapi() -> dict:
        doc = build()  # cached by FastAPI after the first call, so this runs once
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in extra_component_schemas().items():
            if schemas.setdefault(name, schema) != schema:
                raise RuntimeError(f"two different OpenAPI schemas are named {name!r}")
        return doc

    app.openapi = openapi


def native_router(state: ServerState) -> APIRouter:
    """nodegraph's own API, every route under PREFIX (ComfyUI's routes own `/` and `/api/`)."""
    api = APIRouter(prefix=PREFIX)
    env, store = state.env, state.store

    def job_or_404(job_id: str):
        job = store.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id[:MAX_ID_LENGTH]!r}")
        return job

    def submit_error(exc: SubmitError) -> JSONResponse:
        return JSONResponse({"detail": exc.message, "errors": exc.errors()}, status_code=400)

    # --- nodes and workflows --------------------------------------------------------------------
    @api.get("/nodes", tags=["nodes"], response_model=dict[str, NodeSchema], response_model_exclude_unset=True,
             summary="Every node type's schema")
    def nodes():
        out = {}
        for name, spec in sorted(env.registry.specs.items()):
            try:
                out[name] = spec.schema(env)
            except Exception:  # one node whose choices fail to list must not hide the others
                continue
        return out

    @api.post("/validate", tags=["workflows"], response_model=ValidateOut, summary="Check a workflow")
    def validate_workflow(body: WorkflowIn):
        try:
            workflow = state.parse(body.workflow)
        except SubmitError as exc:
            return {"ok": False, "errors": exc.errors()}
        issues = state.check(workflow)
        return {"ok": not issues, "errors": [i.to_json() for i in issues]}

    @api.post("/convert", tags=["workflows"], response_model=ConvertOut, responses=_BAD_REQUEST,
              summary="Any supported format (native, ComfyUI API, ComfyUI UI) as native JSON")
    def convert(body: WorkflowIn):
        try:
            # for the editor: muted and bypassed nodes stay, so they can be shown and un-muted
            return {"workflow": state.parse(body.workflow, keep_modes=True).to_json()}
        except SubmitError as exc:
            return submit_error(exc)

    @api.post("/export/comfy_api", tags=["workflows"], responses=_BAD_REQUEST,
              summary="A workflow as a ComfyUI API prompt")
    def export_comfy_api(body: WorkflowIn) -> dict:
        try:
            return comfy_api.from_native(state.parse(body.workflow), env.registry)
        except SubmitError as exc:
            return submit_error(exc)
        except WorkflowFormatError as exc:
            return submit_error(SubmitError(str(exc), kind="format"))

    @api.get("/workflows", tags=["workflows"], summary="Names of the example workflows")
    def workflows() -> list[str]:
        folder = state.workflows_dir
        return sorted(p.stem for p in folder.glob("*.json")) if folder and folder.is_dir() else []

    @api.get("/workflows/{name}", tags=["workflows"], responses={404: {"model": ErrorOut}, **_BAD_REQUEST},
             summary="One example workflow as native JSON; its shipped input files are copied into the input folder")
    def workflow(name: str) -> dict:
        stem = name[:-5] if name.endswith(".json") else name
        if not stem or stem not in workflows():  # only listed names: no paths
            raise HTTPException(404, f"no example workflow {name[:100]!r}")
        try:
            wf = load_workflow(state.workflows_dir / f"{stem}.json", env.registry)
            # its pictures go to the input folder, so that it validates and runs without an upload
            examples.provide_inputs(wf, state.workflows_dir, env.folders.input)
            return wf.to_json()
        except (WorkflowFormatError, OSError) as exc:
            raise HTTPException(400, str(exc)) from exc

    # --- jobs and queue -------------------------------------------------------------------------
    @api.post("/jobs", tags=["jobs"], response_model=JobSubmitted, responses=_BAD_REQUEST,
              summary="Queue a workflow; invalid ones come back at once with every error")
    def submit(body: JobIn):
        try:
            jobs = state.submit(body.workflow, client_id=body.client_id, extra=body.extra, front=body.front,
                                count=body.number, targets=body.outputs)
        except SubmitError as exc:
            return submit_error(exc)
        return {"job_id": jobs[0].job_id, "job_ids": [j.job_id for j in jobs], "number": jobs[0].number}

    @api.get("/jobs/{job_id}", tags=["jobs"], response_model=JobOut, summary="One job, in any state")
    def get_job(job_id: str):
        return JobOut.model_validate(job_or_404(job_id))

    @api.get("/queue", tags=["queue"], response_model=QueueOut,
             summary="Running jobs and a page of pending ones, in the order they will run")
    def queue(offset: int = Query(0, ge=0, le=2**31), limit: int = Query(100, ge=0, le=state.limits.max_queue_page)):
        return {"running": [JobOut.model_validate(j) for j in store.running()],
                "pending": [JobOut.model_validate(j) for j in store.pending(offset, limit)],
                "pending_total": store.counts().get("pending", 0), "paused": store.paused}

    @api.delete("/queue/{job_id}", tags=["queue"], response_model=DeletedOut,
                summary="Remove a pending job, or interrupt it if it is running")
    def delete_job(job_id: str):
        job = job_or_404(job_id)
        if job.status == "running":
            return {"deleted": False, "interrupted": state.worker.interrupt(job_id)}
        deleted = store.delete_pending(job_id)
        if not deleted:
            raise HTTPException(409, f"job {job_id} is {job.status}, not queued")
        state.broadcast_status()
        return {"deleted": True, "interrupted": False}

    @api.post("/queue/clear", tags=["queue"], response_model=CountOut, summary="Remove every pending job")
    def clear_queue():
        count = store.clear_pending()
        state.broadcast_status()
        return {"count": count}

    @api.post("/queue/{job_id}/front", tags=["queue"], response_model=OkOut,
              summary="Move a pending job to the front")
    def to_front(job_id: str):
        job = job_or_404(job_id)
        if not store.move_to_front(job_id):
            raise HTTPException(409, f"job {job_id} is {job.status}, not queued")
        return {"ok": True}

    def status() -> dict:
        current = state.worker.current
        running = current.job_id if current else next(iter(state.worker.running), None)
        return {**state.status(), "running": running,
                "worker_alive": state.worker.alive, "clients": state.hub.count()}

    @api.post("/queue/pause", tags=["queue"], response_model=StatusOut,
              summary="Stop taking jobs (the running one finishes)")
    def pause():
        store.set_paused(True)
        state.broadcast_status()
        return status()

    @api.post("/queue/resume", tags=["queue"], response_model=StatusOut, summary="Take jobs again")
    def resume():
        store.set_paused(False)
        state.worker.wake()
        state.broadcast_status()
        return status()

    @api.get("/status", tags=["queue"], response_model=StatusOut, summary="Queue size and worker state")
    def get_status():
        return status()

    @api.post("/interrupt", tags=["jobs"], response_model=InterruptOut, summary="Interrupt the running job")
    def interrupt(body: InterruptIn | None = None):
        return {"interrupted": state.worker.interrupt(body.job_id if body else None)}

    # --- history --------------------------------------------------------------------------------
    @api.get("/history", tags=["history"], response_model=HistoryOut, summary="Finished jobs, newest first")
    def history(offset: int = Query(0, ge=0, le=2**31), limit: int = Query(50, ge=0, le=state.limits.max_history_page)):
        jobs, total = store.history(offset, limit)
        return {"items": [JobOut.model_validate(j) for j in jobs], "total": total}

    @api.delete("/history/{job_id}", tags=["history"], response_model=OkOut, summary="Forget a finished job")
    def delete_history(job_id: str):
        if not store.delete_history(job_id):
            raise HTTPException(404, f"no finished job {job_id[:MAX_ID_LENGTH]!r}")
        return {"ok": True}

    @api.post("/history/clear", tags=["history"], response_model=CountOut, summary="Forget every finished job")
    def clear_history():
        return {"count": store.clear_history()}

    # --- files, models, memory ------------------------------------------------------------------
    @api.get("/models", tags=["models"], summary="Model folder kinds")
    def model_kinds() -> list[str]:
        return files.model_kinds(env)

    @api.get("/models/{folder}", tags=["models"], summary="Model files of one folder kind")
    def models(folder: str) -> list[str]:
        return files.model_list(env, folder)

    @api.get("/models/{folder}/info", tags=["models"], response_model=ModelInfoOut,
             summary="A model file's native image size (from its header), for the editor's defaults")
    def model_info(folder: str, name: str):
        return files.model_info(env, folder, name)

    @api.post("/upload/image", tags=["files"], response_model=UploadOut, summary="Upload an image")
    async def upload_image(image: UploadFile = File(...), subfolder: str = Form(""), type: str = Form("input"),
                           overwrite: str | None = Form(None)):
        return await files.upload_image(env, state.limits, image, subfolder, type, overwrite)

    @api.post("/upload/mask", tags=["files"], response_model=UploadOut,
              summary="Upload a mask: its alpha goes into the image named by original_ref")
    async def upload_mask(image: UploadFile = File(...), original_ref: str = Form(...), subfolder: str = Form(""),
                          type: str = Form("input"), overwrite: str | None = Form(None)):
        return await files.upload_image(env, state.limits, image, subfolder, type, overwrite, original_ref)

    @api.get("/view", tags=["files"], summary="An image from the output, input or temp folder",
             responses={200: {"content": {"image/png": {}}}})
    def view(filename: str, subfolder: str = "", type: str = "output", channel: str | None = None) -> Response:
        return files.view(env, filename, subfolder, type, channel)

    @api.post("/free", tags=["system"], response_model=FreeOut,
              summary="Unload models and clear the output cache (after the running job, if any)")
    def free(body: FreeIn | None = None):
        body = body or FreeIn()
        return state.worker.request_free(body.unload_models, body.free_memory)

    @api.get("/cluster", tags=["system"], response_model=ClusterOut,
             summary="Workers: device, loaded models, current job, throughput")
    def cluster() -> dict:
        backend = state.worker.backend
        if hasattr(backend, "cluster"):  # the Ray back end
            return backend.cluster()
        stats = backend.stats()
        current = state.worker.current
        busy, jobs = stats.get("busy_seconds") or 0.0, stats.get("jobs_run") or 0
        return {"backend": backend.kind, "workers": [{
            "name": backend.kind, "pid": stats.get("pid"), "device": stats.get("device_manager", {}).get("device"),
            "alive": backend.alive, "current_job": current.job_id if current else None,
            "models": stats.get("models", []), "jobs_run": jobs, "busy_seconds": busy,
            "jobs_per_busy_second": jobs / busy if busy else None,
            "cache": stats.get("cache"), "device_manager": stats.get("device_manager")}],
            "running": list(state.worker.group)}

    @api.get("/system_stats", tags=["system"], summary="Devices, memory, versions, queue and cache")
    def system_stats() -> dict:
        stats = files.system_stats(env)
        stats["queue"] = status()
        worker = state.worker.stats()  # the cache and models live where jobs run
        stats["cache"] = worker.pop("cache", {})
        stats["device_manager"] = worker.pop("device_manager", {})
        stats["worker"] = worker
        return stats

    @api.websocket("/ws")
    async def native_socket(ws: WebSocket, client_id: str | None = None) -> None:
        client = (client_id or "")[:MAX_ID_LENGTH] or uuid.uuid4().hex
        await serve_socket(state.hub, ws, client, NATIVE, {**state.status(), "sid": client})

    return api


def _static(app: FastAPI, state: ServerState) -> None:
    ui_dir = state.ui_dir
    if ui_dir is not None and (ui_dir / "index.html").is_file():
        app.mount("/", StaticFiles(directory=ui_dir, html=True), name="editor")
        return

    @app.get("/", include_in_schema=False)
    def missing_editor() -> HTMLResponse:
        return HTMLResponse(MISSING_UI_PAGE.format(ui_dir=ui_dir))
