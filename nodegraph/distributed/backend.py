"""RayBackend: the ExecutionBackend contract (nodegraph.workers.base) over Ray actors.

capacity = the number of worker actors: the dispatcher hands out that many jobs at once. A job
goes to the idle worker that already holds its model files (affinity.pick_worker). A driver
thread per job reads the actor's event stream and feeds the sink, so events reach websocket
clients as the job runs, with the in-process shapes.

Faults: an actor that dies mid-job (process killed, node lost) is replaced by a fresh one; its job
runs again once on another worker, announced by a `warning` event; a job whose second run kills
a worker too fails with WorkerDied naming both deaths. Interrupts go to the actor running the job
(or wait for it if it has not started yet).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from ..workers.base import (EventSink, ExecutionBackend, JobOutcome, JobRequest, WorkerStartError, error_record,
                            failure_events, now_ms)
from ..workers.recipe import EnvRecipe
from .affinity import model_files_of, pick_worker

log = logging.getLogger("nodegraph.distributed")

MAX_RUNS = 2  # a job runs again once after its worker died
START_TIMEOUT = 300.0
BOUNDARY_SAMPLES = 1000


@dataclass
class _Worker:
    index: int
    actor: object
    name: str
    info: dict = field(default_factory=dict)
    models: set = field(default_factory=set)
    job: str | None = None
    jobs_run: int = 0
    last_stats: dict = field(default_factory=dict)
    dead: bool = False


def connect(address: str | None, num_cpus: int | None = None) -> None:
    """Join the Ray cluster at `address` ("auto", "ray://host:10001"), or start a small local
    one in this process when None."""
    import ray

    if ray.is_initialized():
        return
    # local workers import nodegraph (and the packs) the way this process does
    root = str(Path(__file__).resolve().parents[2])
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])
    kw = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if address is None:
        ray.init(num_cpus=num_cpus, **kw)
    else:
        ray.init(address=address, **kw)


class RayBackend(ExecutionBackend):
    kind = "ray"
    queues_jobs = True  # submit() takes more jobs than workers: each waits for an idle one

    def __init__(self, env, address: str | None = None, workers: int | None = None, num_cpus: int | None = None,
                 cpus_per_worker: float = 1.0) -> None:
        """`address`: None (a local Ray), "auto" or "ray://host:port". `workers`: how many CPU actors
        on a cluster without GPUs (default 1); with GPUs one actor per GPU (at most `workers` if given)."""
        self.recipe = EnvRecipe.of(env)
        self.registry = env.registry
        self.address = address
        self.wanted = workers
        self.num_cpus = num_cpus
        self.cpus_per_worker = cpus_per_worker
        self._lock = threading.Condition()
        self._workers: list[_Worker] = []
        self._running: dict[str, dict] = {}  # job_id -> {"worker": _Worker, "interrupted": bool}
        self._early: set[str] = set()
        self._started = False
        self._closed = False
        self._made = 0
        self._boundary: list[float] = []
        self.deaths = 0

    # --- workers ------------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return max(1, len(self._workers)) if self._started else 1

    def _actor_options(self) -> tuple[dict, int]:
        import ray

        gpus = int(ray.cluster_resources().get("GPU", 0))
        if gpus:
            count = min(gpus, self.wanted) if self.wanted else gpus
            return {"num_gpus": 1, "num_cpus": self.cpus_per_worker}, count
        return {"num_cpus": self.cpus_per_worker}, self.wanted or 1

    def _make_worker(self, index: int) -> _Worker:
        import ray

        from .actor import WorkerActor

        options, _ = self._actor_options()
        self._made += 1
        name = f"worker-{index}.{self._made}"
        # env vars reach every process Ray starts for it (e.g. NCCL settings); max_concurrency lets
        # interrupt() in while run() streams
        actor = ray.remote(WorkerActor).options(max_concurrency=4, max_restarts=0, **options).remote(self.recipe, name)
        return _Worker(index, actor, name)

    def start(self) -> None:
        import ray

        with self._lock:
            if self._closed:
                raise WorkerStartError("the back end is closed")
            if self._started:
                return
            try:
                connect(self.address, self.num_cpus)
                _, count = self._actor_options()
                workers = [self._make_worker(i) for i in range(count)]
                infos = ray.get([w.actor.info.remote() for w in workers], timeout=START_TIMEOUT)
            except Exception as exc:
                raise WorkerStartError(f"the Ray workers did not start: {exc}") from exc
            for worker, info in zip(workers, infos):
                worker.info = info
            self._workers = workers
            self._started = True
            log.info("nodegraph on Ray: %d worker(s): %s", len(workers),
                     ", ".join(f"{w.name} ({w.info['device']}, pid {w.info['pid']})" for w in workers))

    def _replace(self, dead: _Worker) -> None:
        """A fresh actor in the dead one's place (in the background: it imports torch and the packs)."""
        import ray

        def make() -> None:
            try:
                fresh = self._make_worker(dead.index)
                fresh.info = ray.get(fresh.actor.info.remote(), timeout=START_TIMEOUT)
            except Exception as exc:
                log.error("could not replace %s: %s", dead.name, exc)
                return
            with self._lock:
                if self._closed:
                    return
                self._workers[self._workers.index(dead)] = fresh
                self._lock.notify_all()

        threading.Thread(target=make, name=f"nodegraph-ray-replace-{dead.index}", daemon=True).start()

    def kill_worker(self, job_id: str | None = None) -> str | None:
        """Kill the actor running `job_id` (any busy one when None), as a lost node would; its name."""
        import ray

        with self._lock:
            busy = [w for w in self._workers if w.job is not None and (job_id is None or w.job == job_id)]
        if not busy:
            return None
        ray.kill(busy[0].actor, no_restart=True)
        return busy[0].name

    # --- jobs ---------------------------------------------------------------------------------
    def submit(self, job: JobRequest, sink: EventSink) -> Future:
        self.start()
        future: Future = Future()
        wanted = model_files_of(job.workflow, self.registry)
        with self._lock:
            self._running[job.job_id] = {"worker": None, "interrupted": job.job_id in self._early}
            self._early.discard(job.job_id)
        threading.Thread(target=self._drive, args=(job, sink, future, wanted, time.perf_counter()),
                         name=f"nodegraph-ray-job-{job.job_id}", daemon=True).start()
        return future

    def _claim(self, wanted: frozenset, avoid: set) -> _Worker:
        with self._lock:
            while True:
                if self._closed:
                    raise WorkerStartError("the back end is closed")
                idle = [w for w in self._workers if w.job is None and not w.dead and w.name not in avoid]
                worker = pick_worker(idle, wanted)
                if worker is not None:
                    return worker
                self._lock.wait(1.0)

    def _drive(self, job: JobRequest, sink: EventSink, future: Future, wanted: frozenset, submitted: float) -> None:
        try:
            self._drive_once(job, sink, future, wanted, submitted)
        except Exception as exc:  # the future must resolve whatever happens here
            log.exception("job %s: the Ray driver failed", job.job_id)
            with self._lock:
                self._running.pop(job.job_id, None)
            if not future.done():
                record = error_record(None, None, type(exc).__name__, str(exc) or type(exc).__name__)
                future.set_result(JobOutcome("error", errors=[record]))

    def _drive_once(self, job: JobRequest, sink: EventSink, future: Future, wanted: frozenset,
                    submitted: float) -> None:
        import ray

        deaths: list[str] = []
        started = False
        node = None
        outcome = None
        while outcome is None:
            try:
                worker = self._claim(wanted, set())
            except WorkerStartError as exc:  # closing: the dispatcher puts an interrupted job back in the queue
                record = error_record(None, None, "WorkerStartError", str(exc))
                outcome = JobOutcome("interrupted", errors=[record])
                break
            with self._lock:
                worker.job = job.job_id
                entry = self._running.setdefault(job.job_id, {"worker": None, "interrupted": False})
                entry["worker"] = worker
                interrupted = entry["interrupted"]
            if interrupted:
                worker.actor.interrupt.remote(job.job_id)
            try:
                stream = worker.actor.run.options(num_returns="streaming").remote(job)
                for ref in stream:
                    item = ray.get(ref)
                    if item[0] == "done":
                        outcome, worker.last_stats = item[1], item[2]
                        break
                    _, event, data, png = item
                    if event == "execution_start":
                        if started:
                            continue  # a second run after a dead worker: clients saw the start already
                        started = True
                    elif event == "executing":
                        node = data.get("node")
                    self._emit(sink, job, event, data, png)
            except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError,
                    ray.exceptions.WorkerCrashedError) as exc:
                deaths.append(f"{worker.name} ({worker.info.get('host')}, pid {worker.info.get('pid')})")
                self._on_death(worker, exc)
                if self._closed:  # we killed it on the way out: back to the queue, not a failure
                    record = error_record(node, job.node_type(node), "ServerStopped", "the server stopped while it ran")
                    outcome = JobOutcome("interrupted", errors=[record])
                    continue
                where = f"node {node} ({job.node_type(node)})" if node is not None else "the job"
                if len(deaths) < MAX_RUNS and not self._closed:
                    message = (f"worker {deaths[-1]} died while running {where}; the job runs again on "
                               "another worker")
                    log.warning("job %s: %s", job.job_id, message)
                    self._emit(sink, job, "warning", {"prompt_id": job.job_id, "node": node,
                                                      "node_type": job.node_type(node), "message": message}, None)
                    continue
                message = (f"the job killed {len(deaths)} workers ({', '.join(deaths)}), the last while running "
                           f"{where}; it is not run again")
                record = error_record(node, job.node_type(node), "WorkerDied", message)
                for event, data in failure_events(job.job_id, started, record):
                    self._emit(sink, job, event, data, None)
                outcome = JobOutcome("error", errors=[record])
            finally:
                with self._lock:
                    if not worker.dead:
                        worker.job = None
                        worker.jobs_run += 1
                        if outcome is not None and outcome.status == "success":
                            worker.models |= set(wanted)
                    self._lock.notify_all()
        with self._lock:
            self._running.pop(job.job_id, None)
            self._boundary.append(max(0.0, time.perf_counter() - submitted - outcome.run_seconds))
            del self._boundary[:-BOUNDARY_SAMPLES]
        if deaths:
            outcome.run_seconds = time.perf_counter() - submitted
        future.set_result(outcome)

    @staticmethod
    def _emit(sink: EventSink, job: JobRequest, event: str, data: dict, png: bytes | None) -> None:
        data.setdefault("timestamp", now_ms())
        try:
            sink(event, data, png)
        except Exception:
            log.exception("job %s: the event sink failed on %s", job.job_id, event)

    def _on_death(self, worker: _Worker, exc: Exception) -> None:
        with self._lock:
            if worker.dead:
                return
            worker.dead = True
            worker.job = None
            self.deaths += 1
            closed = self._closed
        log.error("Ray worker %s died: %s", worker.name, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        if not closed:
            self._replace(worker)

    def interrupt(self, job_id: str | None = None) -> bool:
        with self._lock:
            if job_id is None:
                targets = list(self._running.items())
            elif job_id in self._running:
                targets = [(job_id, self._running[job_id])]
            else:  # claimed but not submitted yet: submit() passes it on
                self._early.add(job_id)
                return False
            for _, entry in targets:
                entry["interrupted"] = True
        for jid, entry in targets:
            if entry["worker"] is not None:
                entry["worker"].actor.interrupt.remote(jid)
        return bool(targets)

    def free(self, unload_models: bool, free_memory: bool) -> dict:
        import ray

        with self._lock:
            idle = [w for w in self._workers if w.job is None and not w.dead]
            busy = any(w.job is not None for w in self._workers)
        if not self._started:
            return {"deferred": False, "freed_device_bytes": 0, "cache_entries_cleared": 0}
        results = ray.get([w.actor.free.remote(unload_models, free_memory) for w in idle], timeout=60)
        if unload_models:
            for w in idle:
                w.models.clear()
        return {"deferred": busy, "freed_device_bytes": sum(r["freed_device_bytes"] for r in results),
                "cache_entries_cleared": sum(r["cache_entries_cleared"] for r in results)}

    def cluster(self) -> dict:
        """Workers (device, loaded models, current job, throughput) for /v1/cluster."""
        import ray

        with self._lock:
            workers = list(self._workers)
        rows = []
        for w in workers:
            try:
                stats = ray.get(w.actor.stats.remote(), timeout=5)  # threaded actor: answers while busy
            except Exception as exc:
                stats = {**w.last_stats, "unreachable": str(exc).splitlines()[0] if str(exc) else "unreachable"}
            busy = stats.get("busy_seconds") or 0.0
            jobs = stats.get("jobs_run", w.jobs_run)
            rows.append({"name": w.name, "host": w.info.get("host"), "pid": w.info.get("pid"),
                         "device": w.info.get("device"), "alive": not w.dead, "current_job": w.job,
                         "models": stats.get("models", sorted(f"{a}/{b}" for a, b in w.models)),
                         "jobs_run": jobs, "busy_seconds": busy,
                         "jobs_per_busy_second": jobs / busy if busy else None,
                         "cache": stats.get("cache"), "device_manager": stats.get("device_manager")})
        return {"backend": self.kind, "address": self.address or "local", "workers": rows,
                "deaths": self.deaths, "running": sorted(self._running)}

    def stats(self) -> dict:
        with self._lock:
            samples = list(self._boundary)
            workers = list(self._workers)
        first = workers[0].last_stats if workers else {}
        boundary = {"jobs": len(samples)}
        if samples:
            ordered = sorted(samples)
            boundary.update(mean_ms=1000 * sum(samples) / len(samples), median_ms=1000 * ordered[len(ordered) // 2],
                            p95_ms=1000 * ordered[int(0.95 * (len(ordered) - 1))])
        return {"cache": first.get("cache", {}), "device_manager": first.get("device_manager", {}),
                "backend": self.kind, "workers": len(workers), "deaths": self.deaths, "boundary": boundary}

    def close(self, timeout: float = 5.0) -> None:
        import ray

        with self._lock:
            self._closed = True
            workers, self._workers = self._workers, []
            self._lock.notify_all()
        self.interrupt()
        deadline = time.monotonic() + timeout
        while self._running and time.monotonic() < deadline:
            time.sleep(0.05)
        for w in workers:
            try:
                ray.kill(w.actor, no_restart=True)
            except Exception:
                pass

    @property
    def alive(self) -> bool:
        return not self._closed
