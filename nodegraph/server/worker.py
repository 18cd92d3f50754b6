"""The worker thread: runs queued jobs one at a time, in queue order, on one Executor.

The HTTP side only touches the JobStore and a few thread-safe calls here (wake, interrupt,
request_free), so it stays responsive while a job runs. Nothing a job does can stop the
worker: validation failures and engine exceptions become the job's errors.

Event order per job is the executor's, with one change: the final `executing {node: None}`
(what ComfyUI clients wait for) is held back until the job's history row is written, so a
client that fetches /history/{id} on that event always finds the result.
"""
from __future__ import annotations

import io
import logging
import math
import threading
import time
import traceback

from ..executor import Executor
from ..formats import parse_workflow
from ..node import RunControl
from ..queue import Job, JobStore
from ..validate import ValidationFailed
from .events import EventHub

log = logging.getLogger("nodegraph.server")

PREVIEW_MAX_SIDE = 1024
HISTORY_EVENTS = ("execution_start", "execution_cached", "execution_success", "execution_error",
                  "execution_interrupted", "warning")


def now_ms() -> int:
    return int(time.time() * 1000)


def jsonable(value, depth: int = 0):
    """Plain JSON data (finite numbers, strings, lists, dicts) from whatever a node reported:
    browsers' JSON.parse refuses NaN, and tensors or paths cannot be sent at all."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth > 20:
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, depth + 1) for v in value]
    return str(value)


def encode_preview(image) -> bytes:
    """A preview (PIL image, or an IMAGE tensor) as PNG bytes, at most PREVIEW_MAX_SIDE on a side."""
    if not hasattr(image, "save"):
        from ..images import tensor_to_pil

        image = tensor_to_pil(image)
    if max(image.size) > PREVIEW_MAX_SIDE:
        image = image.copy()
        image.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE))
    if image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class Worker:
    def __init__(self, env, store: JobStore, hub: EventHub) -> None:
        self.env = env
        self.store = store
        self.hub = hub
        self.executor = Executor(env)
        self.current: Job | None = None
        self._thread = threading.Thread(target=self._loop, name="nodegraph-worker", daemon=True)
        self._wake = threading.Condition()
        self._stopping = False
        self._job_lock = threading.Lock()  # held while a job runs
        self._control_lock = threading.Lock()  # pairs `current` with its RunControl
        self._control: RunControl | None = None  # the running job's stop switch
        self._free_flags = {"unload_models": False, "free_memory": False}
        self.jobs_run = 0

    # --- control (any thread) -----------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the running job; the job is interrupted and goes back to the queue."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        self.interrupt()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the running job ignored the interrupt; it will be re-queued at the next start")

    def wake(self) -> None:
        with self._wake:
            self._wake.notify_all()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def interrupt(self, job_id: str | None = None) -> bool:
        """Interrupt the running job (only if it is `job_id`, when given); True if one was.
        It acts on that job's own RunControl, so it can never stop the job that runs next."""
        with self._control_lock:
            current, control = self.current, self._control
        if current is None or (job_id is not None and job_id != current.job_id):
            return False
        control.interrupt()
        return True

    def request_free(self, unload_models: bool, free_memory: bool) -> dict:
        """Free memory now if no job runs, else right after the running job."""
        if self._job_lock.acquire(blocking=False):
            try:
                return {"deferred": False, **self._free(unload_models, free_memory)}
            finally:
                self._job_lock.release()
        with self._wake:
            self._free_flags["unload_models"] |= unload_models
            self._free_flags["free_memory"] |= free_memory
        return {"deferred": True}

    def _free(self, unload_models: bool, free_memory: bool) -> dict:
        freed, cleared = 0, 0
        if unload_models or free_memory:
            freed = self.env.devices.free()
        if unload_models:
            self.env.devices.clear_models()
        if free_memory:
            cleared = len(self.env.cache)
            self.env.cache.clear()
        return {"freed_device_bytes": freed, "cache_entries_cleared": cleared}

    # --- the thread ---------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._wake:
                if self._stopping:
                    return
                flags = dict(self._free_flags)
                self._free_flags = {"unload_models": False, "free_memory": False}
            if any(flags.values()):
                with self._job_lock:
                    self._free(**flags)
            try:
                job = self.store.claim_next()
            except Exception:  # a database hiccup must not kill the worker
                log.exception("could not read the queue")
                job = None
            if job is None:
                with self._wake:
                    if not self._stopping:
                        self._wake.wait(timeout=1.0)
                continue
            with self._job_lock:
                control = RunControl()
                with self._control_lock:
                    self.current, self._control = job, control
                if self._stopping:  # stop() came between the claim and now: the job goes back to the queue
                    control.interrupt()
                try:
                    self._run(job, control)
                except Exception:
                    log.exception("job %s: the worker failed around it", job.job_id)
                finally:
                    with self._control_lock:
                        self.current, self._control = None, None
            self.jobs_run += 1

    def _run(self, job: Job, control: RunControl) -> None:
        client = job.client_id
        messages: list = []
        finals: list[dict] = []  # the held-back executing {node: None}
        started = []

        def post(event: str, data: dict) -> None:
            data["timestamp"] = now_ms()
            if event in HISTORY_EVENTS:
                messages.append([event, data])
            self.hub.post(event, data, client)

        def on_event(event: str, data: dict) -> None:
            try:
                if event == "execution_start":
                    started.append(True)
                if event == "preview":
                    png = encode_preview(data["image"])
                    self.hub.post("preview", {"prompt_id": job.job_id, "node": data.get("node")}, client, png)
                    return
                payload = jsonable({k: v for k, v in data.items() if k != "image"})
                if event in ("executing", "executed"):
                    payload["display_node"] = payload.get("node")
                if event == "executing" and payload.get("node") is None:
                    finals.append(payload)
                    return
                post(event, payload)
            except Exception:  # an event that cannot be sent must not fail the node
                log.exception("job %s: could not send event %s", job.job_id, event)

        self.hub.post_status()
        status, outputs, errors = "error", {}, []
        try:
            extra = dict(job.extra)
            extra.setdefault("client_id", client)
            workflow = parse_workflow(job.workflow, self.env.registry)
            result = self.executor.run(workflow, outputs=job.targets, job_id=job.job_id, on_event=on_event,
                                       extra=extra, control=control)
            status, outputs, errors = result.status, jsonable(result.outputs), jsonable(result.errors)
        except ValidationFailed as exc:  # e.g. a model file removed after the job was queued
            errors = [issue.to_json() for issue in exc.issues]
            first = exc.issues[0]
            self._report_failure(job, post, started, first.node, first.node_type, "ValidationFailed", str(exc), [])
        except Exception as exc:
            tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
            errors = [{"node_id": None, "node_type": None, "exception_type": type(exc).__name__,
                       "exception_message": str(exc) or type(exc).__name__, "traceback": tb}]
            self._report_failure(job, post, started, None, None, type(exc).__name__, str(exc), tb)
        if self._stopping and status == "interrupted":
            self.store.requeue(job.job_id)
        else:
            self.store.finish(job.job_id, status, outputs, errors, messages)
        for data in finals or [{"node": None, "display_node": None, "prompt_id": job.job_id}]:
            data["timestamp"] = now_ms()
            self.hub.post("executing", data, client)
        self.hub.post_status()

    @staticmethod
    def _report_failure(job: Job, post, started: list, node_id, node_type, kind: str, message: str, tb) -> None:
        if not started:
            post("execution_start", {"prompt_id": job.job_id})
        post("execution_error", {"prompt_id": job.job_id, "node_id": node_id, "node_type": node_type,
                                 "executed": [], "exception_message": message, "exception_type": kind,
                                 "traceback": tb, "current_inputs": {}, "current_outputs": {}})
