"""Running one job on an Executor, wherever the Executor lives (a thread here, a worker process).

The runner turns the executor's events into what can cross a process boundary and go to a
websocket as is: plain JSON data stamped with the time, previews encoded once, as PNG or JPEG bytes (the node's choice).
Whatever a job does (invalid at run time, a node raising) ends as a JobOutcome.
"""
from __future__ import annotations

import io
import logging
import math
import threading
import time
import traceback
from typing import Callable

from ..batching import Cohort
from ..executor import Executor
from ..formats import parse_workflow
from ..node import RunControl
from ..validate import ValidationFailed
from .base import EventSink, JobOutcome, JobRequest, error_record, failure_events, model_files_of, now_ms

log = logging.getLogger("nodegraph.workers")

PREVIEW_MAX_SIDE = 1024


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


def encode_preview(image, image_format: str = "PNG", max_size: int | None = None) -> bytes:
    """A preview (PIL image, or an IMAGE tensor) as PNG or JPEG bytes. With `max_size`, resized to fit
    that square as ComfyUI's server does (ImageOps.contain, bilinear; small images grow); else at most
    PREVIEW_MAX_SIDE on a side."""
    from PIL import ImageOps

    if not hasattr(image, "save"):
        from ..images import tensor_to_pil

        image = tensor_to_pil(image)
    if max_size is not None:
        image = ImageOps.contain(image, (max_size, max_size), ImageOps.Image.Resampling.BILINEAR)
    elif max(image.size) > PREVIEW_MAX_SIDE:
        image = image.copy()
        image.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE))
    jpeg = image_format.upper() == "JPEG"
    if image.mode not in (("RGB", "L") if jpeg else ("RGB", "RGBA", "L")):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG" if jpeg else "PNG", quality=95, compress_level=1)  # server.py's settings
    return buffer.getvalue()


class JobRunner:
    """One Executor (output cache, device manager: models stay warm) and the jobs run on it."""

    def __init__(self, env) -> None:
        self.env = env
        self.executor = Executor(env)
        self.jobs_run = 0
        self.busy_seconds = 0.0
        self.models: set[tuple[str, str]] = set()  # (folder, file) of the jobs run here, until models are unloaded

    def run(self, job: JobRequest, control: RunControl, sink: EventSink) -> JobOutcome:
        began = time.perf_counter()
        started = []

        def send(event: str, data: dict, png: bytes | None = None) -> None:
            data["timestamp"] = now_ms()
            sink(event, data, png)

        def on_event(event: str, data: dict) -> None:
            try:
                if event == "execution_start":
                    started.append(True)
                if event == "preview":
                    fmt = str(data.get("image_format") or "PNG").upper()
                    send("preview", {"prompt_id": job.job_id, "node": data.get("node"),
                                     "image_type": "image/jpeg" if fmt == "JPEG" else "image/png"},
                         encode_preview(data["image"], fmt, data.get("max_size")))
                    return
                send(event, jsonable({k: v for k, v in data.items() if k != "image"}))
            except Exception:  # an event that cannot be sent must not fail the node
                log.exception("job %s: could not send event %s", job.job_id, event)

        outcome = JobOutcome("error")
        try:
            extra = dict(job.extra)
            extra.setdefault("client_id", job.client_id)
            workflow = parse_workflow(job.workflow, self.env.registry)
            result = self.executor.run(workflow, outputs=job.targets, job_id=job.job_id, on_event=on_event,
                                       extra=extra, control=control)
            outcome = JobOutcome(result.status, jsonable(result.outputs), jsonable(result.errors))
        except ValidationFailed as exc:  # e.g. a model file removed after the job was queued
            first = exc.issues[0]
            outcome.errors = [issue.to_json() for issue in exc.issues]
            record = error_record(first.node, first.node_type, "ValidationFailed", str(exc))
            for event, data in failure_events(job.job_id, bool(started), record):
                send(event, data)
        except Exception as exc:
            tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
            record = error_record(None, None, type(exc).__name__, str(exc) or type(exc).__name__, tb)
            outcome.errors = [record]
            for event, data in failure_events(job.job_id, bool(started), record):
                send(event, data)
        self.jobs_run += 1
        outcome.run_seconds = time.perf_counter() - began
        self.busy_seconds += outcome.run_seconds
        if isinstance(job.workflow, dict):
            self.models |= model_files_of(job.workflow, self.env.registry)
        return outcome

    def run_together(self, jobs: list[tuple[JobRequest, RunControl, EventSink]],
                     on_done: Callable[[int, JobOutcome], None] | None = None) -> list[JobOutcome]:
        """Run jobs as one cohort (nodegraph/batching.py): each in its own thread, one at a time, meeting
        at nodes that batch (KSampler), so jobs that differ only in seed, prompt or CFG share the
        sampler's batches. `on_done(i, outcome)` as each job ends; outcomes in the order given."""
        outcomes: list[JobOutcome | None] = [None] * len(jobs)
        if len(jobs) == 1:
            outcomes[0] = self.run(*jobs[0])
            if on_done is not None:
                on_done(0, outcomes[0])
            return outcomes
        cohort = Cohort(len(jobs))
        busy_before, began = self.busy_seconds, time.perf_counter()

        def member(i: int, job: JobRequest, control: RunControl, sink: EventSink) -> None:
            control.cohort = cohort
            try:
                outcomes[i] = cohort.run_member(lambda: self.run(job, control, sink))
            finally:
                if outcomes[i] is None:
                    outcomes[i] = JobOutcome("error", errors=[error_record(
                        None, None, "RuntimeError", "the job's thread ended without an outcome")])
                if on_done is not None:
                    try:
                        on_done(i, outcomes[i])
                    except Exception:
                        log.exception("job %s: could not report its end", job.job_id)

        threads = [threading.Thread(target=member, args=(i, *item), name=f"nodegraph-job-{item[0].job_id}", daemon=True)
                   for i, item in enumerate(jobs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # each job's run_seconds counts its waits for the others too: the runner was busy once, not per job
        self.busy_seconds = busy_before + (time.perf_counter() - began)
        return outcomes

    def free(self, unload_models: bool, free_memory: bool) -> dict:
        freed, cleared = 0, 0
        if unload_models or free_memory:
            freed = self.env.devices.free()
        if unload_models:
            self.env.devices.clear_models()
            self.models.clear()
        if free_memory:
            cleared = len(self.env.cache)
            self.env.cache.clear()
        return {"freed_device_bytes": freed, "cache_entries_cleared": cleared}

    def stats(self) -> dict:
        cache = self.env.cache
        return {"cache": {"entries": len(cache), "bytes": cache.size_bytes, "max_bytes": cache.max_bytes,
                          "hits": cache.hits, "misses": cache.misses},
                "device_manager": self.env.devices.stats(), "jobs_run": self.jobs_run,
                "busy_seconds": self.busy_seconds, "models": sorted(f"{a}/{b}" for a, b in self.models)}
