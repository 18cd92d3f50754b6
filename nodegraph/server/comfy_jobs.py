"""ComfyUI's jobs API (/api/jobs, /api/jobs/{id}, cancel), the one its frontend's Job Queue and
history panels read since 1.3x.

Shapes from ComfyUI's comfy_execution/jobs.py and server.py: a job is
{id, status, priority, create_time, execution_start_time, execution_end_time, execution_error,
 outputs_count, previewable_outputs_count, preview_output, workflow_id} with unset keys left out
(prune_dict); one job adds outputs, execution_status and workflow {prompt, extra_data}.
Statuses: pending, in_progress, completed, failed, and cancelled (newer ComfyUI, which the
frontend 1.5x asks for; ComfyUI 0.8 would answer 400 to it). Our "interrupted" is "cancelled".
"""
from __future__ import annotations

import json
from typing import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..queue import Job

PENDING, IN_PROGRESS, COMPLETED, FAILED, CANCELLED = "pending", "in_progress", "completed", "failed", "cancelled"
ALL_STATUSES = [PENDING, IN_PROGRESS, COMPLETED, FAILED, CANCELLED]
PREVIEWABLE = frozenset({"images", "video", "audio"})
THREE_D = (".obj", ".fbx", ".gltf", ".glb")


def status_of(job: Job) -> str:
    return {"pending": PENDING, "running": IN_PROGRESS, "success": COMPLETED, "error": FAILED,
            "interrupted": CANCELLED}.get(job.status, COMPLETED)


def _previewable(media: str, item: dict) -> bool:
    fmt = str(item.get("format", ""))
    return (media in PREVIEWABLE or fmt.startswith(("video/", "audio/"))
            or str(item.get("filename", "")).lower().endswith(THREE_D))


def outputs_summary(outputs: dict) -> tuple[int, int, dict | None]:
    """(outputs_count, previewable_outputs_count, preview_output): a saved ('output') image wins
    over a temp one, as ComfyUI's get_outputs_summary picks it."""
    count = previewable = 0
    preview = fallback = None
    for node_id, node_outputs in outputs.items():
        if not isinstance(node_outputs, dict):
            continue
        for media, items in node_outputs.items():
            if media == "animated" or not isinstance(items, list):
                continue
            for item in items:
                if not isinstance(item, dict):
                    continue
                count += 1
                if not _previewable(media, item):
                    continue
                previewable += 1
                enriched = {**item, "nodeId": node_id, "mediaType": media}
                if preview is None and item.get("type") == "output":
                    preview = enriched
                elif fallback is None:
                    fallback = enriched
    return count, previewable, preview or fallback


def _pruned(record: dict) -> dict:
    return {k: v for k, v in record.items() if v is not None}


def create_time(job: Job) -> int:
    value = job.extra.get("create_time")
    return value if isinstance(value, int) else int(job.created * 1000)


def workflow_id(job: Job) -> str | None:
    pnginfo = job.extra.get("extra_pnginfo")
    workflow = pnginfo.get("workflow") if isinstance(pnginfo, dict) else None
    value = workflow.get("id") if isinstance(workflow, dict) else None
    return value if isinstance(value, str) else None


def job_record(job: Job, queue_item: Callable[[Job], list], full: bool = False) -> dict:
    status = status_of(job)
    item = queue_item(job)
    record = {"id": job.job_id, "status": status, "priority": item[0], "create_time": create_time(job),
              "workflow_id": workflow_id(job)}
    if status in (PENDING, IN_PROGRESS):
        record.update(outputs_count=0, previewable_outputs_count=0)
        record = _pruned(record)
        if full:
            record["workflow"] = {"prompt": item[2], "extra_data": item[3]}
        return record
    start = end = error = None
    for entry in job.messages:
        if not (isinstance(entry, (list, tuple)) and len(entry) >= 2 and isinstance(entry[1], dict)):
            continue
        event, data = entry[0], entry[1]
        if event == "execution_start":
            start = data.get("timestamp")
        elif event in ("execution_success", "execution_error", "execution_interrupted"):
            end = data.get("timestamp")
            if event == "execution_error":
                error = data
    count, previewable, preview = outputs_summary(job.outputs)
    record.update(execution_start_time=start, execution_end_time=end, execution_error=error, outputs_count=count,
                  previewable_outputs_count=previewable, preview_output=preview)
    record = _pruned(record)
    if full:
        from .comfy_compat import history_status

        record["outputs"] = job.outputs
        record["execution_status"] = history_status(job)
        record["workflow"] = {"prompt": item[2], "extra_data": item[3]}
    return record


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def router(state, queue_item: Callable[[Job], list]) -> APIRouter:
    """Routes at /jobs...: mounted under /api only, as ComfyUI registers them as '/api/jobs'."""
    api = APIRouter(tags=["ComfyUI compatible"])
    store = state.store

    def all_jobs() -> list[Job]:
        finished, _ = store.history(0, store.max_history)
        return [*store.running(), *store.pending(), *finished]

    @api.get("/jobs", summary="Jobs in every state: status, workflow_id, sort_by, sort_order, limit, offset")
    def list_jobs(request: Request) -> JSONResponse:
        query = request.query_params
        wanted = ALL_STATUSES
        if query.get("status"):
            wanted = [s.strip().lower() for s in query["status"].split(",") if s.strip()]
            bad = [s for s in wanted if s not in ALL_STATUSES]
            if bad:
                return _error(f"Invalid status value(s): {', '.join(bad)}. Valid values: {', '.join(ALL_STATUSES)}")
        sort_by = query.get("sort_by", "created_at").lower()
        sort_order = query.get("sort_order", "desc").lower()
        if sort_by not in ("created_at", "execution_duration"):
            return _error("sort_by must be 'created_at' or 'execution_duration'")
        if sort_order not in ("asc", "desc"):
            return _error("sort_order must be 'asc' or 'desc'")
        limit = None
        if "limit" in query:
            try:
                limit = int(query["limit"])
            except ValueError:
                return _error("limit must be an integer")
            if limit <= 0:
                return _error("limit must be a positive integer")
        offset = 0
        if "offset" in query:
            try:
                offset = max(0, int(query["offset"]))
            except ValueError:
                return _error("offset must be an integer")
        jobs = [job_record(j, queue_item) for j in all_jobs() if status_of(j) in wanted]
        if query.get("workflow_id"):
            jobs = [j for j in jobs if j.get("workflow_id") == query["workflow_id"]]
        if sort_by == "execution_duration":
            def key(j):
                start, end = j.get("execution_start_time", 0), j.get("execution_end_time", 0)
                return end - start if start and end else 0
        else:
            def key(j):
                return j.get("create_time", 0)
        jobs.sort(key=key, reverse=sort_order == "desc")
        total = len(jobs)
        page = jobs[offset:] if limit is None else jobs[offset:offset + limit]
        return JSONResponse({"jobs": page, "pagination": {"offset": offset, "limit": limit, "total": total,
                                                          "has_more": offset + len(page) < total}})

    def cancel(job_id: str) -> bool:
        job = store.get(job_id)
        if job is None:
            return False
        if job.status == "pending" and store.delete_pending(job_id):
            state.broadcast_status()
            return True
        return state.worker.interrupt(job_id)  # running (or just started): only if it is still this one

    @api.post("/jobs/cancel", summary="Cancel jobs by id ({job_ids: [...]}): dequeue pending, interrupt running")
    async def cancel_many(request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error("Request body must be valid JSON")
        ids = body.get("job_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            return _error("job_ids must be a list")
        bad = [i if isinstance(i, str) else repr(i) for i in ids if not isinstance(i, str) or not i]
        if bad:
            return JSONResponse({"error": "job_ids contains invalid id(s)", "invalid_ids": bad}, status_code=400)
        results = [cancel(i) for i in ids]
        return JSONResponse({"cancelled": any(results)})

    @api.get("/jobs/{job_id}", summary="One job with its outputs and workflow")
    def get_job(job_id: str) -> JSONResponse:
        job = store.get(job_id)
        if job is None:
            return _error("Job not found", 404)
        return JSONResponse(job_record(job, queue_item, full=True))

    @api.post("/jobs/{job_id}/cancel", summary="Cancel one job, whatever its state ({cancelled})")
    def cancel_one(job_id: str) -> JSONResponse:
        return JSONResponse({"cancelled": cancel(job_id)})

    return api
