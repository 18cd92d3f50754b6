"""The in-process back end: jobs run on one thread of this process (tests, `nodegraph run`,
`nodegraph serve --in-process`). Cheapest, but a node that holds the GIL or crashes takes the
process with it; the server uses ProcessBackend by default."""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

from ..node import RunControl
from .base import EventSink, ExecutionBackend, JobOutcome, JobRequest, WorkerStartError, error_record
from .runner import JobRunner


class InProcessBackend(ExecutionBackend):
    kind = "in-process"
    batches_jobs = True

    def __init__(self, env) -> None:
        self.runner = JobRunner(env)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()  # pairs the running jobs with their RunControls
        self._current: dict[str, RunControl] = {}  # the jobs running now (several when run together)
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
        return self.submit_together([(job, sink)])[0]

    def submit_together(self, jobs: list[tuple[JobRequest, EventSink]]) -> list[Future]:
        self.start()
        items = [(job, RunControl(), sink) for job, sink in jobs]
        with self._lock:
            if self._current:
                raise RuntimeError(f"job {next(iter(self._current))} is still running (capacity 1)")
            self._current = {job.job_id: control for job, control, _ in items}
        futures = [Future() for _ in items]
        for future in futures:
            future.set_running_or_notify_cancel()
        self._pool.submit(self._run, items, futures)
        return futures

    def _run(self, items: list, futures: list[Future]) -> None:
        def done(i: int, outcome: JobOutcome) -> None:
            with self._lock:
                self._current.pop(items[i][0].job_id, None)
            futures[i].set_result(outcome)

        try:
            with self._busy:
                self.runner.run_together(items, on_done=done)
        except BaseException as exc:  # never leave a future unresolved
            for future in futures:
                if not future.done():
                    future.set_result(JobOutcome("error", errors=[error_record(
                        None, None, type(exc).__name__, str(exc) or type(exc).__name__)]))
        finally:
            with self._lock:  # (a next batch may already be in _current: only ours go)
                for job, _, _ in items:
                    self._current.pop(job.job_id, None)
                flags, self._free_flags = self._free_flags, {"unload_models": False, "free_memory": False}
            if any(flags.values()):
                with self._busy:
                    self.runner.free(**flags)

    def interrupt(self, job_id: str | None = None) -> bool:
        """Interrupt `job_id`, or every running job when None; True if one was."""
        with self._lock:
            controls = [c for j, c in self._current.items() if job_id is None or j == job_id]
        for control in controls:
            control.interrupt()
        return bool(controls)

    def free(self, unload_models: bool, free_memory: bool) -> dict:
        with self._lock:
            idle = not self._current and self._busy.acquire(blocking=False)
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
