"""The worker-process back end: jobs run in a child process the server supervises.

Nothing a node does can stall the server: a node that holds the GIL, loops, crashes in native
code or is killed for memory does so in the child. The child holds the Executor (output cache,
device manager), so models stay warm from job to job; it is started with the "spawn" context
(no forked copy of the server's threads or CUDA state) from an EnvRecipe.

Interrupt asks the node first (the job's RunControl, reached at once by the child's reader
thread). A node that has not stopped `interrupt_grace` seconds later is not going to: the child
is killed, the job ends "interrupted" with the reason, and the next job gets a fresh child.
A child that dies by itself (segfault, OOM kill) fails its job with the signal named.

Start the back end (and so the child) from the thread that will keep submitting to it: on Linux
the child is killed when that thread ends, so a server killed with -9 leaves no worker behind.
"""
from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from . import child
from .base import (EventSink, ExecutionBackend, JobOutcome, JobRequest, WorkerStartError, error_record,
                   failure_events, now_ms)
from .recipe import EnvRecipe

log = logging.getLogger("nodegraph.workers")

DEFAULT_INTERRUPT_GRACE = 5.0
FREE_WAIT = 30.0  # seconds an idle worker may take to free memory before the answer says "deferred"
BOUNDARY_SAMPLES = 1000


@dataclass
class _Running:
    job: JobRequest
    future: Future
    sink: EventSink
    submitted: float
    started: bool = False
    node: str | None = None  # the node executing now, for the reason when the worker dies
    kill_timer: threading.Timer | None = None  # set once the job is asked to stop


@dataclass
class _Child:
    """One generation of the worker process."""
    process: multiprocessing.Process
    conn: object
    ready: threading.Event = field(default_factory=threading.Event)
    pid: int | None = None
    dead: bool = False
    running: dict[str, _Running] = field(default_factory=dict)  # the jobs it runs now (several when together)
    kill_reason: str | None = None  # set when we kill it on purpose
    free_waiters: list = field(default_factory=list)  # FIFO of [Event, result] for "freed" answers
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    reader: threading.Thread | None = None

    def send(self, message) -> None:
        with self.send_lock:
            self.conn.send(message)


def describe_exit(code: int | None) -> str:
    if code is None:
        return "it stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        why = {"SIGSEGV": "a crash in native code", "SIGBUS": "a crash in native code",
               "SIGABRT": "an abort in native code",
               "SIGKILL": "killed from outside, e.g. by the out-of-memory killer"}.get(name)
        return f"it was killed by {name}" + (f" ({why})" if why else "")
    return f"it exited with code {code}"


class ProcessBackend(ExecutionBackend):
    kind = "process"
    batches_jobs = True

    def __init__(self, env_or_recipe, *, interrupt_grace: float = DEFAULT_INTERRUPT_GRACE,
                 start_timeout: float = 300.0) -> None:
        self.recipe = env_or_recipe if isinstance(env_or_recipe, EnvRecipe) else EnvRecipe.of(env_or_recipe)
        self.interrupt_grace = interrupt_grace
        self.start_timeout = start_timeout
        self._mp = multiprocessing.get_context("spawn")
        self._lock = threading.RLock()
        self._child: _Child | None = None
        self._closed = False
        self._stats: dict = {}
        self.restarts = -1  # the first start is not a restart
        self._boundary: list[float] = []  # seconds per job spent outside the child's run

    # --- lifecycle ----------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        child_ = self._child
        return child_.pid if child_ is not None and not child_.dead else None

    @property
    def alive(self) -> bool:
        return not self._closed

    def start(self) -> None:
        with self._lock:
            if self._closed:
                raise WorkerStartError("the back end is closed")
            current = self._child
            if current is not None and not current.dead:
                ready = current.ready
            else:
                current = self._spawn()
                ready = current.ready
        if not ready.wait(self.start_timeout) or current.dead:
            if not current.dead:
                current.process.kill()
            code = current.process.exitcode
            raise WorkerStartError(f"the worker process did not start: {describe_exit(code)}")

    def _spawn(self) -> _Child:
        parent_end, child_end = self._mp.Pipe()
        process = self._mp.Process(target=child.main, args=(child_end, self.recipe), name="nodegraph-worker",
                                   daemon=True)
        process.start()
        child_end.close()
        spawned = _Child(process, parent_end)
        self._child = spawned
        self.restarts += 1
        spawned.reader = threading.Thread(target=self._read, args=(spawned,),
                                          name=f"nodegraph-worker-pipe-{process.pid}", daemon=True)
        spawned.reader.start()
        return spawned

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker: a running job is interrupted, and killed if it has not stopped in `timeout`."""
        with self._lock:
            self._closed = True
            current = self._child
        if current is None or current.dead:
            return
        running = list(current.running.values())
        for job in running:
            self._send(current, ("interrupt", job.job.job_id))
        deadline = time.monotonic() + timeout
        for job in running:
            try:
                job.future.result(max(0.0, deadline - time.monotonic()))
            except Exception:
                pass
        with self._lock:
            if current.running and not current.dead:
                current.kill_reason = "the server stopped while it ran"
        self._send(current, ("stop",))
        current.process.join(timeout if current.kill_reason is None else 0)
        if current.process.is_alive():
            current.process.kill()
            current.process.join(5)
        if current.reader is not None:
            current.reader.join(5)  # it settles the running job's future and marks the child dead

    def kill_worker(self) -> int | None:
        """Kill the worker process now (as the OOM killer would); returns its pid."""
        current = self._child
        if current is None or current.dead:
            return None
        current.process.kill()
        return current.pid

    # --- jobs ---------------------------------------------------------------------------------
    def submit(self, job: JobRequest, sink: EventSink) -> Future:
        return self.submit_together([(job, sink)])[0]

    def submit_together(self, jobs: list[tuple[JobRequest, EventSink]]) -> list[Future]:
        for _ in range(3):
            self.start()
            with self._lock:
                current = self._child
                if current is None or current.dead:
                    continue  # it died between start and now: start another
                if current.running:
                    raise RuntimeError(f"job {next(iter(current.running))} is still running (capacity 1)")
                submitted = time.perf_counter()
                running = [_Running(job, Future(), sink, submitted) for job, sink in jobs]
                current.running = {r.job.job_id: r for r in running}
            # a broken pipe shows up as the child's death, in _read
            self._send(current, ("run", [job for job, _ in jobs]))
            return [r.future for r in running]
        raise WorkerStartError("the worker process keeps dying as it starts")

    def interrupt(self, job_id: str | None = None) -> bool:
        """Interrupt `job_id`, or every running job when None; True if one was."""
        with self._lock:
            current = self._child
            if current is None or current.dead:
                return False
            targets = [r for j, r in current.running.items() if job_id is None or j == job_id]
            for running in targets:
                if running.kill_timer is None:
                    running.kill_timer = threading.Timer(self.interrupt_grace, self._kill_stuck, (current, running))
                    running.kill_timer.daemon = True
                    running.kill_timer.start()
        for running in targets:
            self._send(current, ("interrupt", running.job.job_id))
        return bool(targets)

    def _kill_stuck(self, current: _Child, running: _Running) -> None:
        with self._lock:
            if current.dead or current.running.get(running.job.job_id) is not running:
                return
            node = running.node
            where = f"node {node} ({running.job.node_type(node)})" if node is not None else "the job"
            current.kill_reason = (f"{where} did not stop within {self.interrupt_grace:g} s of the interrupt; "
                                   "the worker process was killed and restarted")
        log.warning("job %s: %s", running.job.job_id, current.kill_reason)
        current.process.kill()

    def free(self, unload_models: bool, free_memory: bool) -> dict:
        with self._lock:
            current = self._child
            if current is None or current.dead:  # no worker: nothing is loaded
                return {"deferred": False, "freed_device_bytes": 0, "cache_entries_cleared": 0}
            busy = bool(current.running)
            waiter = [threading.Event(), None]
            current.free_waiters.append(waiter)
        self._send(current, ("free", unload_models, free_memory))
        if busy or not waiter[0].wait(FREE_WAIT) or waiter[1] is None:
            return {"deferred": True}
        return {"deferred": False, **waiter[1]}

    def stats(self) -> dict:
        with self._lock:
            samples = list(self._boundary)
            stats = dict(self._stats)
        boundary = {"jobs": len(samples)}
        if samples:
            ordered = sorted(samples)
            boundary.update(mean_ms=1000 * sum(samples) / len(samples), median_ms=1000 * ordered[len(ordered) // 2],
                            p95_ms=1000 * ordered[int(0.95 * (len(ordered) - 1))])
        return {**stats, "backend": self.kind, "pid": self.pid, "restarts": max(self.restarts, 0),
                "interrupt_grace_s": self.interrupt_grace, "boundary": boundary}

    # --- the pipe -----------------------------------------------------------------------------
    @staticmethod
    def _send(current: _Child, message) -> None:
        try:
            current.send(message)
        except (OSError, ValueError, EOFError):  # the child is gone; its reader reports it
            pass

    def _read(self, current: _Child) -> None:
        conn = current.conn
        while True:
            try:
                message = conn.recv()
                kind = message[0]
                png = conn.recv_bytes() if kind == "event" and message[4] else None
            except (EOFError, OSError):
                break
            except Exception:  # a message that does not unpickle: the pipe can't be trusted any more
                log.exception("unreadable message from the worker process; killing it")
                current.process.kill()
                break
            if kind == "event":
                self._on_event(current, message[1], message[2], message[3], png)
            elif kind == "done":
                self._on_done(current, message[1], message[2], message[3])
            elif kind == "freed":
                with self._lock:
                    self._stats = message[2]
                    waiter = current.free_waiters.pop(0) if current.free_waiters else None
                if waiter is not None:
                    waiter[1] = message[1]
                    waiter[0].set()
            elif kind == "ready":
                with self._lock:
                    current.pid, self._stats = message[1], message[2]
                current.ready.set()
        self._on_exit(current)

    def _on_event(self, current: _Child, job_id: str, event: str, data: dict, png: bytes | None) -> None:
        running = current.running.get(job_id)
        if running is None:
            return
        if event == "execution_start":
            running.started = True
        elif event == "executing":
            running.node = data.get("node")
        try:
            running.sink(event, data, png)
        except Exception:
            log.exception("job %s: the event sink failed on %s", job_id, event)

    def _on_done(self, current: _Child, job_id: str, outcome: JobOutcome, stats: dict) -> None:
        with self._lock:
            running = current.running.pop(job_id, None)
            if running is None:
                return
            self._stats = stats
            self._boundary.append(max(0.0, time.perf_counter() - running.submitted - outcome.run_seconds))
            del self._boundary[:-BOUNDARY_SAMPLES]
        if running.kill_timer is not None:
            running.kill_timer.cancel()
        running.future.set_result(outcome)

    def _on_exit(self, current: _Child) -> None:
        current.process.join(5)
        code = current.process.exitcode
        with self._lock:
            current.dead = True
            running, current.running = list(current.running.values()), {}
            waiters, current.free_waiters = current.free_waiters, []
            reason = current.kill_reason
        current.ready.set()  # a start() waiting on it sees it dead
        for waiter in waiters:
            waiter[0].set()
        try:
            current.conn.close()
        except OSError:
            pass
        if not running:
            if reason is None and not self._closed:
                log.warning("the worker process ended while idle (%s); it restarts with the next job",
                            describe_exit(code))
            return
        for job_run in running:  # each job of a batch ends by the same rules as a job alone
            self._end_with_worker(job_run, code, reason)

    def _end_with_worker(self, running: _Running, code: int | None, reason: str | None) -> None:
        if running.kill_timer is not None:
            running.kill_timer.cancel()
        job, node = running.job, running.node
        if reason is not None and running.kill_timer is None and not self._closed:  # killed for a batch-mate
            record = error_record(node, job.node_type(node), "WorkerRestarted",
                                  f"another job run with it ignored an interrupt: {reason}")
            events, outcome = [], JobOutcome("retry", errors=[record])
        elif reason is not None:  # killed on purpose: the job was interrupted
            record = error_record(node, job.node_type(node), "WorkerRestarted", reason)
            events = [] if running.started else [("execution_start", {"prompt_id": job.job_id})]
            events.append(("execution_interrupted", {"prompt_id": job.job_id, "node_id": node,
                                                     "node_type": job.node_type(node), "executed": [],
                                                     "reason": reason}))
            outcome = JobOutcome("interrupted", errors=[record])
        else:
            where = f"node {node} ({job.node_type(node)})" if node is not None else "the job"
            message = (f"the worker process died while running {where}: {describe_exit(code)}. "
                       "It was restarted; the queue goes on")
            log.error("job %s: %s", job.job_id, message)
            record = error_record(node, job.node_type(node), "WorkerDied", message)
            events = failure_events(job.job_id, running.started, record)
            outcome = JobOutcome("error", errors=[record])
        for event, data in events:
            data["timestamp"] = now_ms()
            try:
                running.sink(event, data, None)
            except Exception:
                log.exception("job %s: the event sink failed on %s", job.job_id, event)
        outcome.run_seconds = time.perf_counter() - running.submitted
        running.future.set_result(outcome)
