"""Request and response bodies of the native API (they make its OpenAPI schema)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..validate import Issue
from .service import MAX_BATCH, MAX_ID_LENGTH


class ErrorOut(BaseModel):
    detail: str
    errors: list[Issue] = []


class WorkflowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workflow: dict[str, Any] = Field(description="native, ComfyUI API or ComfyUI UI format")


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workflow: dict[str, Any] = Field(description="native, ComfyUI API or ComfyUI UI format")
    client_id: str | None = Field(None, max_length=MAX_ID_LENGTH,
                                  description="the websocket client (/v1/ws?client_id=) that gets this job's events")
    extra: dict[str, Any] | None = Field(None, description="extra data handed to nodes (ctx.extra)")
    number: int = Field(1, ge=1, le=MAX_BATCH, description="batch count: how many runs to queue")
    front: bool = Field(False, description="queue at the front instead of the back")
    outputs: list[str] | None = Field(None, description="output node ids to run (default: every output node)")


class JobSubmitted(BaseModel):
    job_id: str = Field(description="the (first) job's id, also its prompt_id in events")
    job_ids: list[str] = Field(description="every queued job (several with a batch count)")
    number: int = Field(description="the (first) job's submission number")


class JobOut(BaseModel):
    """A job as the API shows it: the public fields of the queue's Job record (`JobOut.model_validate(job)`)."""
    model_config = ConfigDict(from_attributes=True)
    job_id: str
    number: int
    status: Literal["pending", "running", "success", "error", "interrupted"]
    client_id: str | None = None
    workflow: dict[str, Any]
    outputs: dict[str, Any] = Field(description="output node id -> UI outputs, e.g. {images: [{filename, subfolder, type}]}")
    errors: list[dict[str, Any]]
    created: float
    started: float | None = None
    finished: float | None = None


class QueueOut(BaseModel):
    running: list[JobOut]
    pending: list[JobOut] = Field(description="one page of the pending jobs, in the order they will run")
    pending_total: int = Field(0, description="pending jobs in all")
    paused: bool


class HistoryOut(BaseModel):
    items: list[JobOut] = Field(description="finished jobs, newest first")
    total: int


class StatusOut(BaseModel):
    queue_remaining: int = Field(description="pending + running jobs")
    paused: bool
    running: str | None = Field(None, description="the running job's id")
    worker_alive: bool = True
    clients: int = Field(0, description="connected websockets")


class DeletedOut(BaseModel):
    deleted: bool = Field(description="a pending job was removed")
    interrupted: bool = Field(False, description="the job was running and has been interrupted")


class CountOut(BaseModel):
    count: int


class OkOut(BaseModel):
    ok: bool


class InterruptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    job_id: str | None = Field(None, description="interrupt only if this job is the running one")


class InterruptOut(BaseModel):
    interrupted: bool


class FreeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unload_models: bool = True
    free_memory: bool = True


class FreeOut(BaseModel):
    deferred: bool = Field(description="a job is running: memory is freed right after it")
    freed_device_bytes: int | None = None
    cache_entries_cleared: int | None = None


class ModelInfoOut(BaseModel):
    name: str
    image_size: list[int] | None = None  # [width, height] the model was trained at, when its file says


class UploadOut(BaseModel):
    name: str
    subfolder: str
    type: str


class ValidateOut(BaseModel):
    ok: bool
    errors: list[Issue]


class ConvertOut(BaseModel):
    workflow: dict[str, Any]


class ClusterWorkerOut(BaseModel):
    """One worker: where it runs, what it holds, what it is doing, how fast it has been."""
    name: str
    host: str | None = None
    pid: int | None = None
    device: str | None = None
    alive: bool = True
    current_job: str | None = None
    models: list[str] = Field([], description="model files (folder/name) of the jobs run there, until unloaded")
    jobs_run: int | None = None
    busy_seconds: float | None = None
    jobs_per_busy_second: float | None = Field(None, description="throughput while busy")
    cache: dict[str, Any] | None = None
    device_manager: dict[str, Any] | None = None


class ClusterOut(BaseModel):
    backend: str = Field(description="in-process, process or ray")
    address: str | None = Field(None, description="the Ray cluster's address (ray back end)")
    workers: list[ClusterWorkerOut]
    deaths: int = Field(0, description="workers lost since the server started")
    running: list[str] = Field([], description="jobs running now")
