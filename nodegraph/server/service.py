"""What the routes share: the environment, the job store, the event hub, the worker, and job
submission (parse any format -> validate -> queue) used by both the native and the ComfyUI API."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..formats import WorkflowFormatError, detect_format, parse_workflow
from ..limits import Limits
from ..queue import Job, JobStore
from ..validate import Issue, validate
from ..workers import ExecutionBackend
from ..workflow import Workflow
from .events import EventHub
from .worker import Worker

MAX_BATCH = 100
MAX_ID_LENGTH = 200


class SubmitError(Exception):
    """A workflow that cannot be queued: a format error, or validation issues (all of them)."""

    def __init__(self, message: str, issues: list[Issue] | None = None, kind: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.issues = issues or []
        self.kind = kind  # "format" | "invalid" | "duplicate_id"

    def errors(self) -> list[dict]:
        if self.issues:
            return [issue.to_json() for issue in self.issues]
        return [Issue(self.kind, self.message).to_json()]


@dataclass
class ServerState:
    env: object
    store: JobStore
    hub: EventHub
    token: str | None = None
    ui_dir: Path | None = None
    workflows_dir: Path | None = None
    limits: Limits = field(default_factory=Limits)
    backend: ExecutionBackend | None = None  # where jobs run; None: a thread of this process
    worker: Worker | None = None
    preview_method: str = "none"  # ComfyUI's --preview-method: the default for prompts on its routes
    disable_metadata: bool = False  # ComfyUI's --disable-metadata: saved images carry no workflow chunks
    batch_window: float = 0.0  # seconds the dispatcher waits to take jobs together (0: no cross-job batching)
    max_batch_jobs: int = 8

    def __post_init__(self) -> None:
        self.hub.status = self.status
        if self.worker is None:
            self.worker = Worker(self.env, self.store, self.hub, self.backend, batch_window=self.batch_window,
                                 max_batch_jobs=self.max_batch_jobs)

    # --- status -------------------------------------------------------------------------------
    def status(self) -> dict:
        counts = self.store.counts()
        return {"queue_remaining": counts.get("pending", 0) + counts.get("running", 0),
                "paused": self.store.paused}

    def broadcast_status(self) -> None:
        self.hub.post_status()

    # --- workflows ----------------------------------------------------------------------------
    def parse(self, doc, keep_modes: bool = False) -> Workflow:
        # counted before parsing too: parsing a 100k-node document is what costs the memory
        problem = self.limits.workflow_size_problem(_rough_node_count(doc))
        if problem:
            raise SubmitError(problem, kind="format")
        try:
            workflow = parse_workflow(doc, self.env.registry, keep_modes)
        except WorkflowFormatError as exc:
            raise SubmitError(str(exc), kind="format") from exc
        except Exception as exc:  # a malformed foreign document can fail anywhere in its converter
            raise SubmitError(f"not a readable workflow: {type(exc).__name__}: {exc}", kind="format") from exc
        problem = self.limits.workflow_size_problem(len(workflow.nodes))  # subgraphs expanded
        if problem:
            raise SubmitError(problem, kind="format")
        return workflow

    def check(self, workflow: Workflow, targets: list[str] | None = None) -> list[Issue]:
        _, issues = validate(workflow, self.env.registry, self.env, targets)
        return issues

    def submit(self, doc, *, client_id: str | None = None, extra: dict | None = None, front: bool = False,
               count: int = 1, job_id: str | None = None, targets: list[str] | None = None) -> list[Job]:
        """Parse (any format), validate, and queue `count` runs; raises SubmitError with every issue."""
        workflow = self.parse(doc)
        if targets is not None:
            targets = [str(t) for t in targets]
        issues = self.check(workflow, targets)
        if issues:
            raise SubmitError(f"the workflow is invalid ({len(issues)} problem(s))", issues)
        if job_id is not None and (not job_id or len(job_id) > MAX_ID_LENGTH or self.store.exists(job_id)):
            raise SubmitError(f"job id {job_id[:MAX_ID_LENGTH]!r} is empty, too long or already used",
                              kind="duplicate_id")
        native = workflow.to_json()
        try:  # NaN / Infinity parse in Python but are not JSON: they could not be shown back
            json.dumps([native, extra], allow_nan=False)
        except (ValueError, TypeError) as exc:
            raise SubmitError(f"the workflow or its extra data holds a value JSON cannot carry: {exc}",
                              kind="format") from exc
        if self.disable_metadata:
            extra = {**(extra or {}), "no_metadata": True}
        ids = [job_id if (job_id and k == 0) else str(uuid.uuid4()) for k in range(max(1, min(count, MAX_BATCH)))]
        # one stored document however many copies
        jobs = self.store.add_many(ids, native, extra=extra or {}, client_id=client_id, targets=targets, front=front)
        self.worker.wake()
        self.broadcast_status()
        return jobs

    @staticmethod
    def format_of(doc) -> str | None:
        try:
            return detect_format(doc)
        except WorkflowFormatError:
            return None


def _rough_node_count(doc) -> int:
    """Nodes in a document of any format, without parsing it: native and UI documents keep them
    under "nodes", ComfyUI API prompts are the node mapping itself."""
    if not isinstance(doc, dict):
        return 0
    nodes = doc.get("nodes")
    return len(nodes) if isinstance(nodes, (dict, list)) else len(doc)
