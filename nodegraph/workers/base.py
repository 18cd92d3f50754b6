"""The execution back end contract: what the server's dispatcher (and a future Ray back end) talks to.

    backend.start()                                  # make it ready (a worker process: spawn and wait)
    future = backend.submit(JobRequest(...), sink)   # sink(event, data, preview_png) on any thread
    outcome = future.result()                        # a JobOutcome, whatever happened to the worker
    futures = backend.submit_together([(job, sink), ...])  # cross-job batching (when batches_jobs)
    backend.interrupt(job_id); backend.free(unload_models, free_memory); backend.stats(); backend.close()

A back end runs at most `capacity` jobs at once. Its future always resolves with a JobOutcome:
a node error, an interrupt, a crashed or killed worker all become the job's status and errors,
never an exception out of result(). `submit_together` runs several jobs as one cohort
(nodegraph/batching.py): their sampler nodes share a batch where model, shape, steps and sampler agree,
the rest runs one job after another; each job keeps its own events and outcome, and its future
resolves as soon as that job ends. Event data is plain JSON (finite numbers) carrying
"prompt_id" and "timestamp"; previews are PNG or JPEG bytes (data["image_type"]).
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

EventSink = Callable[[str, dict, "bytes | None"], None]


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class JobRequest:
    job_id: str
    workflow: dict  # native workflow document
    extra: dict = field(default_factory=dict)
    client_id: str | None = None
    targets: list[str] | None = None

    @classmethod
    def of(cls, job) -> "JobRequest":
        """From a queue Job."""
        return cls(job.job_id, job.workflow, dict(job.extra), job.client_id, job.targets)

    def node_type(self, node_id: str | None) -> str | None:
        node = (self.workflow.get("nodes") or {}).get(node_id) if node_id is not None else None
        return node.get("type") if isinstance(node, dict) else None


@dataclass
class JobOutcome:
    status: str  # success | error | interrupted | retry (its worker was restarted for another job: run it again)
    outputs: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)
    run_seconds: float = 0.0  # time spent running it where it ran (the boundary's cost is the rest)


class WorkerStartError(RuntimeError):
    """The back end could not get a worker ready."""


class ExecutionBackend(ABC):
    kind = "abstract"
    capacity = 1
    batches_jobs = False  # submit_together runs jobs as one cohort (else the dispatcher never calls it)

    @abstractmethod
    def start(self) -> None:
        """Get ready to run jobs (idempotent); raises WorkerStartError."""

    @abstractmethod
    def submit(self, job: JobRequest, sink: EventSink) -> Future:
        """Run a job; the future resolves with its JobOutcome."""

    def submit_together(self, jobs: list[tuple[JobRequest, EventSink]]) -> list[Future]:
        """Run jobs as one cohort; a future per job, in the order given, each resolving with its JobOutcome."""
        if len(jobs) == 1:
            return [self.submit(*jobs[0])]
        raise NotImplementedError(f"the {self.kind} back end does not run jobs together")

    @abstractmethod
    def interrupt(self, job_id: str | None = None) -> bool:
        """Interrupt the running job (only if it is `job_id`, when given); True if one was."""

    @abstractmethod
    def free(self, unload_models: bool, free_memory: bool) -> dict:
        """Free memory now if idle ({"deferred": False, ...}), else after the running job."""

    @abstractmethod
    def stats(self) -> dict:
        """Output cache and device manager figures of the worker, and the back end's own."""

    @abstractmethod
    def close(self, timeout: float = 5.0) -> None:
        """Stop; a running job is interrupted and its future resolves."""

    @property
    @abstractmethod
    def alive(self) -> bool:
        """The back end can take jobs (or is restarting its worker to take them)."""


def error_record(node_id, node_type, kind: str, message: str, tb=None) -> dict:
    return {"node_id": node_id, "node_type": node_type, "exception_type": kind, "exception_message": message,
            "traceback": list(tb or [])}


def failure_events(job_id: str, started: bool, record: dict) -> list[tuple[str, dict]]:
    """The events of a job that failed outside its nodes (validation at run time, a dead worker)."""
    events = [] if started else [("execution_start", {"prompt_id": job_id})]
    events.append(("execution_error", {"prompt_id": job_id, **record, "executed": [], "current_inputs": {},
                                       "current_outputs": []}))
    return events


def model_files_of(workflow: dict, registry) -> frozenset[tuple[str, str]]:
    """{(folder kind, file name)} of the literal model-file inputs of a native workflow document."""
    found = set()
    for node in (workflow.get("nodes") or {}).values():
        if not isinstance(node, dict):
            continue
        spec = registry.specs.get(node.get("type"))
        if spec is None:
            continue
        inputs = node.get("inputs") or {}
        for inp in spec.inputs:
            value = inputs.get(inp.name)
            if inp.folder and isinstance(value, str):
                found.add((inp.folder, value))
    return frozenset(found)
