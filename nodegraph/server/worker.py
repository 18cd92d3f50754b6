"""The dispatcher: takes queued jobs one at a time, in queue order, and runs each on the execution
back end (nodegraph.workers): a supervised worker process by default, a thread with
`--in-process`. It relays the job's events to the websocket hub and writes its result to the
JobStore. Nothing a job does can stop the dispatcher: validation failures, node exceptions and a
worker that dies all become the job's errors.

The HTTP side only touches the JobStore and a few thread-safe calls here (wake, interrupt,
request_free). Event order per job is the executor's, with one change: the final
`executing {node: None}` (what ComfyUI clients wait for) is held back until the job's history row
is written, so a client that fetches /history/{id} on that event always finds the result.

Cross-job batching (issue 15): with a batch window (`batch_window` seconds > 0, the default on CUDA)
and a back end that `batches_jobs`, the dispatcher that takes a job also takes the jobs queued by the
end of the window (at most `max_batch_jobs`) and hands them to the back end together
(ExecutionBackend.submit_together). Whether they really share a batch is decided where it is known:
at the sampler node, by model, shape, steps and sampler (nodegraph/batching.py); the others run one
after another. Each job keeps its own events, history row and outcome, each finished as it ends.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import as_completed

from ..queue import Job, JobStore
from ..workers import ExecutionBackend, InProcessBackend, JobOutcome, JobRequest
from ..workers.base import error_record, failure_events
from ..workers.runner import PREVIEW_MAX_SIDE, encode_preview, jsonable  # noqa: F401 - re-exported
from .events import NATIVE, EventHub

log = logging.getLogger("nodegraph.server")

HISTORY_EVENTS = ("execution_start", "execution_cached", "execution_success", "execution_error",
                  "execution_interrupted", "warning", "batched")
NATIVE_ONLY_EVENTS = ("batched",)  # ours, not ComfyUI's: not sent to ComfyUI's /ws
DEFAULT_MAX_BATCH_JOBS = 8
CUDA_BATCH_WINDOW_MS = 20.0  # a lone job waits this long for company: small beside a job's second or so


def default_batch_window_ms(env) -> float:
    """On by default where batching pays (CUDA: a batch of 4 costs little more than one); off on the
    CPU, where a batch costs what its jobs cost one after another."""
    device = getattr(getattr(env, "devices", None), "device", None)
    return CUDA_BATCH_WINDOW_MS if getattr(device, "type", None) == "cuda" else 0.0
START_RETRY = 2.0  # seconds between attempts to start a worker that failed to start


def now_ms() -> int:
    return int(time.time() * 1000)


class Worker:
    def __init__(self, env, store: JobStore, hub: EventHub, backend: ExecutionBackend | None = None, *,
                 batch_window: float = 0.0, max_batch_jobs: int = DEFAULT_MAX_BATCH_JOBS) -> None:
        self.env = env
        self.store = store
        self.hub = hub
        self.backend = backend if backend is not None else InProcessBackend(env)
        self.batch_window = max(0.0, float(batch_window))  # seconds; 0: no cross-job batching
        self.max_batch_jobs = max(1, int(max_batch_jobs))
        self.group: dict[str, Job] = {}  # the jobs taken and not yet finished (several when run together)
        self.batches_run: list[int] = []  # how many jobs each hand-over held (stats, tests)
        self._thread = threading.Thread(target=self._loop, name="nodegraph-dispatcher", daemon=True)
        self._wake = threading.Condition()
        self._stopping = False
        self._control_lock = threading.Lock()  # pairs `current` with what interrupt() must do
        self._submitted = False  # the group is in the back end's hands
        self._interrupt_early: set[str] = set()  # jobs interrupted between claim and submit
        self.jobs_run = 0
        # a back end with capacity > 1 (Ray) takes several jobs at once: each on its own thread
        self.running: dict[str, Job] = {}
        self._job_threads: list[threading.Thread] = []

    @property
    def current(self) -> Job | None:
        """The first running job of the group (None when idle)."""
        group = self.group
        return next(iter(group.values()), None) if group else None

    @property
    def batching(self) -> bool:
        return self.batch_window > 0 and self.max_batch_jobs > 1 and self.backend.capacity == 1 \
            and getattr(self.backend, "batches_jobs", False)

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
            group = list(self.group)
            if not group or (job_id is not None and job_id not in group):
                return False
            targets = [job_id] if job_id is not None else group  # ComfyUI's plain /interrupt: what runs
            submitted = self._submitted
            if not submitted:  # the dispatcher repeats it once submit() has returned
                self._interrupt_early.update(targets)
        hit = False
        for target in targets:
            hit = self.backend.interrupt(target) or hit
        return hit or not submitted

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
                self.group, self._submitted = {job.job_id: job}, False
                self._interrupt_early = {job.job_id} if self._stopping else set()
            try:
                jobs = self._gather(job) if self.batching else [job]
                self._run(jobs)
            except Exception:
                log.exception("job %s: the dispatcher failed around it", job.job_id)
                for left in list(self.group.values()):  # taken but never run: back to the queue
                    self.store.requeue(left.job_id)
            finally:
                with self._control_lock:
                    self.group, self._submitted = {}, False

    def _gather(self, first: Job) -> list[Job]:
        """`first` and the jobs queued by the end of the batch window (at most max_batch_jobs)."""
        jobs = [first]
        deadline = time.monotonic() + self.batch_window
        while len(jobs) < self.max_batch_jobs and not self._stopping:
            try:
                job = self.store.claim_next()
            except Exception:
                log.exception("could not read the queue")
                break
            if job is not None:
                with self._control_lock:
                    self.group[job.job_id] = job
                jobs.append(job)
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                break
            with self._wake:  # a submit wakes us
                self._wake.wait(timeout=left)
        return jobs

    def _run_beside(self, job: Job) -> None:
        """Run `job` on its own thread, then wait until the back end has a free slot."""
        def run() -> None:
            try:
                self._run([job])
            except Exception:
                log.exception("job %s: the dispatcher failed around it", job.job_id)
            finally:
                with self._control_lock:
                    self.running.pop(job.job_id, None)
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

    def _run(self, jobs: list[Job]) -> None:
        """Run the jobs (one, or several together) and finish each as it ends."""
        dispatches = [_Dispatch(self, job) for job in jobs]
        self.hub.post_status(now=True)  # ComfyUI: status (the job taken), then execution_start
        if len(jobs) > 1:
            self.batches_run.append(len(jobs))
            log.info("running %d jobs together: %s", len(jobs), ", ".join(job.job_id for job in jobs))
        try:
            if len(jobs) == 1:
                futures = [self.backend.submit(JobRequest.of(jobs[0]), dispatches[0].on_event)]
            else:
                futures = self.backend.submit_together([(JobRequest.of(job), d.on_event)
                                                        for job, d in zip(jobs, dispatches)])
            with self._control_lock:
                self._submitted = True
                early, self._interrupt_early = self._interrupt_early, set()
            for job_id in early:
                self.backend.interrupt(job_id)
        except Exception as exc:  # the back end could not take them (e.g. its worker cannot start)
            record = error_record(None, None, type(exc).__name__, str(exc) or type(exc).__name__)
            for d in dispatches:
                d.fail(record)
            return
        by_future = dict(zip(futures, dispatches))
        for future in as_completed(futures):
            by_future[future].finish(future.result())


class _Dispatch:
    """One job's side of a run: relays its events to the hub, then writes its history row."""

    def __init__(self, worker: Worker, job: Job) -> None:
        self.worker, self.job = worker, job
        self.messages: list = []
        self.finals: list[dict] = []  # the held-back executing {node: None}

    def on_event(self, event: str, data: dict, png: bytes | None) -> None:
        hub, client = self.worker.hub, self.job.client_id
        if png is not None:
            hub.post("preview", data, client, png)
            return
        if event == "node_message":  # a node's own message (ComfyUI's send_sync): posted as the node sent it
            hub.post(data.get("event"), data.get("data"), data.get("client_id"))
            return
        if event in ("executing", "executed"):
            data.setdefault("display_node", data.get("node"))
        if event == "executing" and data.get("node") is None:
            self.finals.append(data)
            return
        if event in HISTORY_EVENTS:
            self.messages.append([event, data])
        hub.post(event, data, client, only=NATIVE if event in NATIVE_ONLY_EVENTS else None)

    def fail(self, record: dict) -> None:
        for event, data in failure_events(self.job.job_id, False, record):
            data["timestamp"] = now_ms()
            self.on_event(event, data, None)
        self.finish(JobOutcome("error", errors=[record]))

    def finish(self, outcome: JobOutcome) -> None:
        worker, job = self.worker, self.job
        try:
            if outcome.status == "retry" or (worker._stopping and outcome.status == "interrupted"):
                worker.store.requeue(job.job_id)
            else:
                worker.store.finish(job.job_id, outcome.status, outcome.outputs, outcome.errors, self.messages)
        finally:
            with worker._control_lock:
                worker.group.pop(job.job_id, None)
                worker.jobs_run += 1
        worker.hub.post_status(now=True)  # ComfyUI (main.py): task_done sends status, then executing None
        for data in self.finals or [{"node": None, "display_node": None, "prompt_id": job.job_id}]:
            data["timestamp"] = now_ms()
            worker.hub.post("executing", data, job.client_id)
