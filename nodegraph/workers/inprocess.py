"""The in-process back end: jobs run on one thread of this process (tests, `nodegraph run`,
`nodegraph serve --in-process`). Cheapest, but a node that holds the GIL or crashes takes the
process with it; the server uses ProcessBackend by default."""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

from ..node import RunControl
from .base import EventSink, ExecutionBackend, JobOutcome, JobRequest, WorkerStartError
from .runner import JobRunner


class InProcessBackend(ExecutionBackend):
    kind = "in-process"

    def __init__(self, env) -> None:
        self.runner = JobRunner(env)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()  # pairs the running job with its RunControl
        self._current: tuple[str, RunControl] | None = None
        self._busy = threading.Lock()  # held while a job (or a free) runs
        self._free_flags = {"unload_models": False, "free_memory": False}
        self._closed = False

    @property
    def executor(self):
        return self.runner.executor

    def start(self) -> None:
        with self._lock:
            if self._closed:
                raise WorkerStartError("the back end is closed")
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nodegraph-job")

    def submit(self, job: JobRequest, sink: EventSink) -> Future:
        self.start()
        control = RunControl()
        with self._lock:
            if self._current is not None:
                raise RuntimeError(f"job {self._current[0]} is still running (capacity 1)")
            self._current = (job.job_id, control)
        return self._pool.submit(self._run, job, control, sink)

    def _run(self, job: JobRequest, control: RunControl, sink: EventSink) -> JobOutcome:
        try:
            with self._busy:
                return self.runner.run(job, control, sink)
        finally:
            with self._lock:
                self._current = None
                flags, self._free_flags = self._free_flags, {"unload_models": False, "free_memory": False}
            if any(flags.values()):
                with self._busy:
                    self.runner.free(**flags)

    def interrupt(self, job_id: str | None = None) -> bool:
        with self._lock:
            current = self._current
        if current is None or (job_id is not None and job_id != current[0]):
            return False
        current[1].interrupt()
        return True

    def free(self, unload_models: bool, free_memory: bool) -> dict:
        with self._lock:
            idle = self._current is None and self._busy.acquire(blocking=False)
            if not idle:
                self._free_flags["unload_models"] |= unload_models
                self._free_flags["free_memory"] |= free_memory
                return {"deferred": True}
        try:
            return {"deferred": False, **self.runner.free(unload_models, free_memory)}
        finally:
            self._busy.release()

    def stats(self) -> dict:
        return {"backend": self.kind, **self.runner.stats()}

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._closed = True
            pool = self._pool
        self.interrupt()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    @property
    def alive(self) -> bool:
        return not self._closed
