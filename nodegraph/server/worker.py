"""The dispatcher: takes queued jobs one at a time, in queue order, and runs each on the execution
back end (nodegraph.workers): a supervised worker process by default, a thread with
`--in-process`. It relays the job's events to the websocket hub and writes its result to the
JobStore. Nothing a job does can stop the dispatcher: validation failures, node exceptions and a
worker that dies all become the job's errors.

The HTTP side only touches the JobStore and a few thread-safe calls here (wake, interrupt,
request_free). Event order per job is the executor's, with one change: the final
`executing {node: None}` (what ComfyUI clients wait for) is held back until the job's history row
is written, so a client that fetches /history/{id} on that event always finds the result.
"""
from __future__ import annotations

import logging
import threading
import time

from ..queue import Job, JobStore
from ..workers import ExecutionBackend, InProcessBackend, JobOutcome, JobRequest
from ..workers.base import error_record, failure_events
from ..workers.runner import PREVIEW_MAX_SIDE, encode_preview, jsonable  # noqa: F401 - re-exported
from .events import EventHub

log = logging.getLogger("nodegraph.server")

HISTORY_EVENTS = ("execution_start", "execution_cached", "execution_success", "execution_error",
                  "execution_interrupted", "warning")
START_RETRY = 2.0  # seconds between attempts to start a worker that failed to start


def now_ms() -> int:
    return int(time.time() * 1000)


class Worker:
    def __init__(self, env, store: JobStore, hub: EventHub, backend: ExecutionBackend | None = None) -> None:
        self.env = env
        self.store = store
        self.hub = hub
        self.backend = backend if backend is not None else InProcessBackend(env)
        self.current: Job | None = None
        self._thread = threading.Thread(target=self._loop, name="nodegraph-dispatcher", daemon=True)
        self._wake = threading.Condition()
        self._stopping = False
        self._control_lock = threading.Lock()  # pairs `current` with what interrupt() must do
        self._submitted = False  # the current job is in the back end's hands
        self._interrupt_early = False  # interrupted between claim and submit
        self.jobs_run = 0
        # a back end with capacity > 1 (Ray) takes several jobs at once: each on its own thread
        self.running: dict[str, Job] = {}
        self._job_threads: list[threading.Thread] = []

    @property
    def executor(self):
        """The in-process back end's Executor (tests wrap its run)."""
        return self.backend.executor

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
        for thread in list(self._job_threads):
            thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the running job ignored the interrupt; it will be re-queued at the next start")
        self.backend.close(timeout=min(timeout, 5.0))

    def wake(self) -> None:
        with self._wake:
            self._wake.notify_all()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def interrupt(self, job_id: str | None = None) -> bool:
        """Interrupt the running job (only if it is `job_id`, when given); True if one was.
        It acts on that job only, so it can never stop the job that runs next."""
        with self._control_lock:
            if self.running:  # several jobs at once: the back end finds the one(s) to interrupt
                if job_id is not None and job_id not in self.running:
                    return False
                return self.backend.interrupt(job_id) or True
            current = self.current
            if current is None or (job_id is not None and job_id != current.job_id):
                return False
            if not self._submitted:  # the dispatcher repeats it once submit() has returned
                self._interrupt_early = True
        return self.backend.interrupt(current.job_id) or not self._submitted

    def request_free(self, unload_models: bool, free_memory: bool) -> dict:
        """Free memory now if no job runs, else right after the running job."""
        return self.backend.free(unload_models, free_memory)

    def stats(self) -> dict:
        return self.backend.stats()

    # --- the thread ---------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._wake:
                if self._stopping:
                    return
            if not self._ready():
                continue
            try:
                job = self.store.claim_next()
            except Exception:  # a database hiccup must not kill the dispatcher
                log.exception("could not read the queue")
                job = None
            if job is None:
                with self._wake:
                    if not self._stopping:
                        self._wake.wait(timeout=1.0)
                continue
            if self.backend.capacity > 1:
                self._run_beside(job)
                continue
            with self._control_lock:
                self.current, self._submitted, self._interrupt_early = job, False, self._stopping
            try:
                self._run(job)
            except Exception:
                log.exception("job %s: the dispatcher failed around it", job.job_id)
            finally:
                with self._control_lock:
                    self.current, self._submitted = None, False
            self.jobs_run += 1

    def _run_beside(self, job: Job) -> None:
        """Run `job` on its own thread, then wait until the back end has a free slot."""
        def run() -> None:
            try:
                self._run(job)
            except Exception:
                log.exception("job %s: the dispatcher failed around it", job.job_id)
            finally:
                with self._control_lock:
                    self.running.pop(job.job_id, None)
                self.jobs_run += 1
                self.wake()

        with self._control_lock:
            self.running[job.job_id] = job
        thread = threading.Thread(target=run, name=f"nodegraph-dispatch-{job.job_id}", daemon=True)
        self._job_threads = [t for t in self._job_threads if t.is_alive()] + [thread]
        thread.start()
        with self._wake:
            while len(self.running) >= self.backend.capacity and not self._stopping:
                self._wake.wait(timeout=1.0)

    def _ready(self) -> bool:
        """Start (or restart) the back end's worker before taking a job; retry later if it can't."""
        try:
            self.backend.start()
            return True
        except Exception as exc:
            log.error("the worker could not start: %s; retrying in %g s", exc, START_RETRY)
            with self._wake:
                if not self._stopping:
                    self._wake.wait(timeout=START_RETRY)
            return False

    def _run(self, job: Job) -> None:
        client = job.client_id
        messages: list = []
        finals: list[dict] = []  # the held-back executing {node: None}

        def on_event(event: str, data: dict, png: bytes | None) -> None:
            if png is not None:
                self.hub.post("preview", data, client, png)
                return
            if event == "node_message":  # a node's own message (ComfyUI's send_sync): posted as the node sent it
                self.hub.post(data.get("event"), data.get("data"), data.get("client_id"))
                return
            if event in ("executing", "executed"):
                data.setdefault("display_node", data.get("node"))
            if event == "executing" and data.get("node") is None:
                finals.append(data)
                return
            if event in HISTORY_EVENTS:
                messages.append([event, data])
            self.hub.post(event, data, client)

        self.hub.post_status(now=True)  # ComfyUI: status (the job taken), then execution_start
        request = JobRequest.of(job)
        try:
            future = self.backend.submit(request, on_event)
            with self._control_lock:
                self._submitted = True
                early = self._interrupt_early
            if early:
                self.backend.interrupt(job.job_id)
            outcome = future.result()
        except Exception as exc:  # the back end could not take it (e.g. its worker cannot start)
            record = error_record(None, None, type(exc).__name__, str(exc) or type(exc).__name__)
            for event, data in failure_events(job.job_id, False, record):
                data["timestamp"] = now_ms()
                on_event(event, data, None)
            outcome = JobOutcome("error", errors=[record])
        if self._stopping and outcome.status == "interrupted":
            self.store.requeue(job.job_id)
        else:
            self.store.finish(job.job_id, outcome.status, outcome.outputs, outcome.errors, messages)
        self.hub.post_status(now=True)  # ComfyUI (main.py): task_done sends status, then executing None
        for data in finals or [{"node": None, "display_node": None, "prompt_id": job.job_id}]:
            data["timestamp"] = now_ms()
            self.hub.post("executing", data, client)
