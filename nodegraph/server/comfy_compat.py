"""ComfyUI's HTTP routes and websocket, with ComfyUI's field names, so its clients and scripts work.

    POST /prompt {prompt, client_id, extra_data, front?, prompt_id?, partial_execution_targets?}
         -> {prompt_id, number, node_errors} | 400 {error, node_errors}
    GET  /prompt                      {exec_info: {queue_remaining}}
    GET  /object_info[/{class}]       node schemas in ComfyUI's layout
    GET  /queue, POST /queue          {queue_running, queue_pending} / {clear, delete}
    GET  /history[/{id}], POST /history
    POST /interrupt, POST /free, GET /view, POST /upload/image, POST /upload/mask, GET /system_stats
    GET  /models, /models/{folder}, /embeddings
    GET  /api/jobs[/{id}], POST /api/jobs/cancel, /api/jobs/{id}/cancel      (comfy_jobs.py)
    /users, /settings[/{id}], /userdata[...], /v2/userdata                  (comfy_user.py)
    /features, /extensions, /i18n, /workflow_templates, /global_subgraphs, /experiment/models,
    /view_metadata, /internal/...                                           (comfy_support.py)
    WS   /ws?clientId=                status, execution_start, execution_cached, executing, progress,
                                      executed, execution_error, execution_interrupted, execution_success;
                                      progress_state, feature_flags (answering the client's);
                                      binary previews: >I 1, >I image type, image; or >I 4
                                      with metadata for clients that support it (comfy_protocol.py)

Every route is served at `/` and again under `/api` (ComfyUI 0.8 registers each route twice,
server.py add_routes; its frontend uses `/api`), except /api/jobs (only there, as in ComfyUI)
and /internal (only at the root: ComfyUI mounts it as a sub-app, which the prefixing skips).

ComfyUI's clients send JSON without a JSON content type (urllib's default is form-encoded), so
these routes read the raw body themselves. Validation follows ComfyUI's validate_prompt
(comfy_validation.py): the valid outputs run, the others come back in node_errors. Differences:
a body's "number" (an explicit queue priority) is not honoured; `front` is.
"""
from __future__ import annotations

import json
import time
import uuid
from typing import Any

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile, WebSocket
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..formats import comfy_api
from ..node import NodeSpec, resolve_choices
from ..queue import Job
from ..workflow import Workflow
from . import files
from .comfy_support import server_features
from .comfy_validation import check_prompt, submit_error
from .events import COMFY, serve_socket
from .service import MAX_ID_LENGTH, ServerState, SubmitError


SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")  # execution.py
DEFAULT_PREVIEW_KEY = "default_preview_method"
PRIVATE_EXTRA_KEYS = ("metadata_text", DEFAULT_PREVIEW_KEY, "comfy_front")  # ours, not shown as extra_data


# --- request bodies (documented in the OpenAPI schema; parsed from the raw body) -----------------
class PromptRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    prompt: dict[str, Any]
    client_id: str | None = Field(None, max_length=MAX_ID_LENGTH)
    extra_data: dict[str, Any] | None = None
    front: bool | None = None
    prompt_id: str | None = Field(None, max_length=MAX_ID_LENGTH)
    partial_execution_targets: list[str] | None = None


class QueueRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    clear: bool | None = None
    delete: list[str] | None = None


class FreeRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    unload_models: bool = False
    free_memory: bool = False


class InterruptRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    prompt_id: str | None = None


def _documented(model: type[BaseModel], required: bool = True) -> dict:
    return {"requestBody": {"required": required,
                            "content": {"application/json": {"schema": model.model_json_schema()}}}}


async def _body(request: Request, model: type[BaseModel], required: bool = True):
    raw = await request.body()
    if not raw.strip():
        if required:
            raise HTTPException(400, "a JSON body is required")
        return model()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise HTTPException(400, "invalid request: " + "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:10])) from exc


async def _prompt_body(request: Request) -> PromptRequest:
    """POST /prompt's body, first through the on-prompt handlers ComfyUI packs registered (as ComfyUI's
    trigger_on_prompt: they may rewrite the prompt, e.g. fill in wildcards)."""
    import sys

    server_module = sys.modules.get("nodegraph.comfy_compat.server_module")
    handlers = getattr(getattr(getattr(server_module, "PromptServer", None), "instance", None),
                       "on_prompt_handlers", None)
    if not handlers:
        return await _body(request, PromptRequest)
    raw = await request.body()
    try:
        data = json.loads(raw)
    except ValueError:
        return await _body(request, PromptRequest)  # its own error message
    try:
        return PromptRequest.model_validate(server_module.trigger_on_prompt(data))
    except ValidationError as exc:
        raise HTTPException(400, "invalid request: " + "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:10])) from exc


# --- layouts ------------------------------------------------------------------------------------
def input_entry(inp, env) -> list:
    """One input as ComfyUI declares it: [type, options] or [choices, options]."""
    options: dict[str, Any] = {}
    if inp.has_default:
        options["default"] = inp.default
    if inp.type.name in ("INT", "FLOAT"):
        for key in ("min", "max", "step"):
            if getattr(inp, key) is not None:
                options[key] = getattr(inp, key)
    if inp.multiline:
        options["multiline"] = True
    if inp.tooltip:
        options["tooltip"] = inp.tooltip
    if inp.force_input:
        options["forceInput"] = True
    if inp.lazy:
        options["lazy"] = True
    if inp.control_after_generate:
        options["control_after_generate"] = True
    if inp.display == "image_upload":
        options["image_upload"] = True
    elif inp.display:
        options["display"] = inp.display
    if inp.is_list:
        options["is_list"] = True
    if inp.type.name == "COMBO":
        return [resolve_choices(inp, env), options]
    return [inp.type.name, options] if options else [inp.type.name]


def object_info(spec: NodeSpec, env) -> dict:
    if getattr(spec.cls, "comfy_class", None) is not None:  # a ComfyUI pack's node: as ComfyUI writes it
        from ..comfy_compat.node_info import pack_node_info

        return pack_node_info(spec, env)
    required = {i.name: input_entry(i, env) for i in spec.inputs if not i.optional}
    optional = {i.name: input_entry(i, env) for i in spec.inputs if i.optional}
    inputs: dict[str, Any] = {"required": required}
    if optional:
        inputs["optional"] = optional
    return {
        "input": inputs,
        "input_order": {key: list(value) for key, value in inputs.items()},
        "output": [o.type.name for o in spec.outputs],
        "output_is_list": [o.is_list for o in spec.outputs],
        "output_name": [o.name for o in spec.outputs],
        "output_tooltips": [o.tooltip for o in spec.outputs],
        "name": spec.name,
        "display_name": spec.display_name,
        "description": spec.description,
        "python_module": spec.module,
        "category": spec.category,
        "output_node": spec.output_node,
        "deprecated": False,
        "experimental": False,
    }


def comfy_prompt_of(job: Job, registry) -> dict:
    prompt = (job.extra.get("metadata_text") or {}).get("prompt")
    if isinstance(prompt, dict):
        return prompt
    try:
        return comfy_api.from_native(Workflow.model_validate(job.workflow), registry)
    except Exception:
        return {}


def queue_item(job: Job, registry) -> list:
    """ComfyUI's queue tuple: [number, prompt_id, prompt, extra_data, outputs_to_execute]."""
    extra = {k: v for k, v in job.extra.items() if k not in PRIVATE_EXTRA_KEYS}
    if job.client_id is not None:
        extra["client_id"] = job.client_id
    targets = job.targets
    if targets is None:
        targets = [nid for nid, n in (job.workflow.get("nodes") or {}).items()
                   if (spec := registry.get(n.get("type"))) is not None and spec.output_node]
    return [comfy_number(job), job.job_id, comfy_prompt_of(job, registry), extra, targets]


def comfy_number(job: Job) -> int:
    """ComfyUI's number (server.py post_prompt): the submission counter, negated for a job put at the front."""
    return -job.number if job.extra.get("comfy_front") else job.number


def history_status(job: Job) -> dict:
    return {"status_str": "success" if job.status == "success" else "error",
            "completed": job.status == "success", "messages": job.messages}


def history_entry(job: Job, registry) -> dict:
    return {
        "prompt": queue_item(job, registry),
        "outputs": job.outputs,
        "status": history_status(job),
        "meta": {nid: {"node_id": nid, "display_node": nid, "parent_node": None, "real_node_id": nid}
                 for nid in job.outputs},
    }


def history_page(state: ServerState, max_items: int | None, offset: int) -> dict:
    """ComfyUI's order: oldest first; by default (offset -1) the newest max_items."""
    _, total = state.store.history(0, 0)
    cap = state.limits.max_history_page if max_items is None else max(0, min(max_items, state.limits.max_history_page))
    start = max(0, total - cap) if offset < 0 else offset
    count = max(0, min(cap, total - start))
    jobs, _ = state.store.history(total - start - count, count)
    registry = state.env.registry
    return {job.job_id: history_entry(job, registry) for job in reversed(jobs)}


# --- routes -------------------------------------------------------------------------------------
def router(state: ServerState) -> APIRouter:
    api = APIRouter(tags=["ComfyUI compatible"])
    env = state.env

    @api.post("/prompt", openapi_extra=_documented(PromptRequest),
              summary="Queue a workflow (ComfyUI API format; native and UI formats work too)")
    async def post_prompt(request: Request) -> JSONResponse:
        from starlette.concurrency import run_in_threadpool

        body = await _prompt_body(request)
        extra = dict(body.extra_data or {})
        if body.client_id is not None:
            extra["client_id"] = body.client_id
        for key in SENSITIVE_EXTRA_DATA_KEYS:  # never stored, never shown back (ComfyUI keeps them apart too)
            extra.pop(key, None)
        extra["create_time"] = int(time.time() * 1000)  # as ComfyUI stamps it, in ms
        extra[DEFAULT_PREVIEW_KEY] = state.preview_method  # the server's --preview-method (samplers read it)
        if body.front:
            extra["comfy_front"] = True
        checked = await run_in_threadpool(check_prompt, state, body.prompt, body.partial_execution_targets)
        if checked.error is not None:
            return JSONResponse({"error": checked.error, "node_errors": checked.node_errors}, status_code=400)
        if checked.prompt is not None:
            extra["metadata_text"] = {"prompt": checked.prompt}  # saved files carry it, as ComfyUI's do
        try:
            jobs = await run_in_threadpool(
                state.submit, checked.doc, client_id=body.client_id or extra.get("client_id"), extra=extra,
                front=bool(body.front), job_id=body.prompt_id, targets=checked.outputs)
        except SubmitError as exc:
            error, per_node = submit_error(exc, env.registry, env)
            return JSONResponse({"error": error, "node_errors": per_node}, status_code=400)
        return JSONResponse({"prompt_id": jobs[0].job_id, "number": comfy_number(jobs[0]),
                             "node_errors": checked.node_errors})

    @api.get("/prompt", summary="Queue size")
    def get_prompt() -> dict:
        return {"exec_info": {"queue_remaining": state.status()["queue_remaining"]}}

    @api.get("/object_info", summary="Every node type in ComfyUI's layout")
    def get_object_info() -> dict:
        out = {}
        for name, spec in sorted(env.registry.specs.items()):
            try:
                out[name] = object_info(spec, env)
            except Exception:  # a node whose choices fail to list must not hide the others
                continue
        return out

    @api.get("/object_info/{node_class}", summary="One node type in ComfyUI's layout ({} if unknown)")
    def get_object_info_node(node_class: str) -> dict:
        spec = env.registry.get(node_class)
        return {node_class: object_info(spec, env)} if spec is not None else {}

    @api.get("/queue", summary="Running and pending jobs as ComfyUI tuples")
    def get_queue() -> dict:
        registry = env.registry
        return {"queue_running": [queue_item(j, registry) for j in state.store.running()],
                "queue_pending": [queue_item(j, registry) for j in state.store.pending()]}

    @api.post("/queue", openapi_extra=_documented(QueueRequest), summary="Clear the queue or delete pending jobs")
    async def post_queue(request: Request) -> Response:
        body = await _body(request, QueueRequest)
        if body.clear:
            state.store.clear_pending()
        for job_id in body.delete or []:
            state.store.delete_pending(str(job_id))
        state.broadcast_status()
        return Response(status_code=200)

    @api.get("/history", summary="Finished jobs, oldest first (the newest max_items by default)")
    def get_history(max_items: int | None = Query(None, ge=0), offset: int = Query(-1, ge=-1)) -> dict:
        return history_page(state, max_items, offset)

    @api.get("/history/{prompt_id}", summary="One finished job ({} if unknown or not finished)")
    def get_history_item(prompt_id: str) -> dict:
        job = state.store.get(prompt_id)
        if job is None or job.status in ("pending", "running"):
            return {}
        return {job.job_id: history_entry(job, env.registry)}

    @api.post("/history", openapi_extra=_documented(QueueRequest), summary="Clear the history or delete entries")
    async def post_history(request: Request) -> Response:
        body = await _body(request, QueueRequest)
        if body.clear:
            state.store.clear_history()
        for job_id in body.delete or []:
            state.store.delete_history(str(job_id))
        return Response(status_code=200)

    @api.post("/interrupt", openapi_extra=_documented(InterruptRequest, required=False),
              summary="Interrupt the running job (only it, if prompt_id is given)")
    async def post_interrupt(request: Request) -> Response:
        body = await _body(request, InterruptRequest, required=False)
        state.worker.interrupt(body.prompt_id)
        return Response(status_code=200)

    @api.post("/free", openapi_extra=_documented(FreeRequest, required=False),
              summary="Unload models / free memory (after the running job, if any)")
    async def post_free(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        body = await _body(request, FreeRequest, required=False)
        await run_in_threadpool(state.worker.request_free, body.unload_models, body.free_memory)
        return Response(status_code=200)

    @api.get("/view", summary="An image from the output, input or temp folder",
             responses={200: {"content": {"image/png": {}}}})
    def get_view(filename: str, subfolder: str = "", type: str = "output", channel: str | None = None) -> Response:
        return files.view(env, filename, subfolder, type, channel)

    @api.post("/upload/image", summary="Upload an image (multipart: image, subfolder, type, overwrite)")
    async def post_upload_image(image: UploadFile = File(...), subfolder: str = Form(""), type: str = Form("input"),
                                overwrite: str | None = Form(None)) -> dict:
        return await files.upload_image(env, state.limits, image, subfolder, type, overwrite)

    @api.post("/upload/mask", summary="Upload a mask: its alpha goes into the image named by original_ref")
    async def post_upload_mask(image: UploadFile = File(...), original_ref: str = Form(...),
                               subfolder: str = Form(""), type: str = Form("input"),
                               overwrite: str | None = Form(None)) -> dict:
        return await files.upload_image(env, state.limits, image, subfolder, type, overwrite, original_ref)

    @api.get("/system_stats", summary="System, device and memory information")
    def get_system_stats() -> dict:
        return files.system_stats(env)

    @api.get("/models", summary="Model folder kinds")
    def get_model_kinds() -> list[str]:
        return files.model_kinds(env)

    @api.get("/models/{folder}", summary="Model files of one folder kind")
    def get_models(folder: str) -> list[str]:
        return files.model_list(env, folder)

    @api.get("/embeddings", summary="Textual inversion embeddings (names without extension)")
    def get_embeddings() -> list[str]:
        return [name.rsplit(".", 1)[0] for name in env.folders.list("embeddings")]

    @api.websocket("/ws")
    async def comfy_socket(ws: WebSocket, clientId: str | None = None) -> None:  # noqa: N803 - ComfyUI's name
        sid = (clientId or "")[:MAX_ID_LENGTH] or uuid.uuid4().hex
        await serve_socket(state.hub, ws, sid, COMFY, {**state.status(), "sid": sid},
                           features=server_features(state.limits))

    return api


def mount(app, state: ServerState, data_dir, frontend_root, logs) -> None:
    """Add every ComfyUI route to the app, at `/` and under `/api`."""
    from pathlib import Path

    from . import comfy_jobs, comfy_support, comfy_user

    user_files = comfy_user.UserFiles(Path(data_dir) / "user")
    registry = state.env.registry
    routers = [router(state), comfy_user.router(user_files), comfy_support.router(state, frontend_root)]
    # the OpenAPI document lists no /api path (the native API's rule), so the jobs API, which lives only
    # there, is documented in comfy_jobs.py
    app.include_router(comfy_jobs.router(state, lambda job: queue_item(job, registry)), prefix="/api",
                       include_in_schema=False)
    for prefix in ("/api", ""):
        for r in routers:  # documented once, at the root
            app.include_router(r, prefix=prefix, include_in_schema=not prefix)
    app.include_router(comfy_support.internal_router(state, logs))
