"""Where jobs run: the execution back ends the server's dispatcher hands jobs to.

- InProcessBackend: a thread of this process (tests, `nodegraph run`, `serve --in-process`);
- ProcessBackend: a supervised worker process (the server's default), killed and restarted when a
  node ignores an interrupt or crashes;
- the Ray back end (issue 16) implements the same ExecutionBackend contract.
"""
from .base import EventSink, ExecutionBackend, JobOutcome, JobRequest, WorkerStartError
from .inprocess import InProcessBackend
from .process import ProcessBackend
from .recipe import EnvRecipe
from .runner import JobRunner, encode_preview, jsonable

__all__ = ["EventSink", "ExecutionBackend", "JobOutcome", "JobRequest", "WorkerStartError", "InProcessBackend",
           "ProcessBackend", "EnvRecipe", "JobRunner", "encode_preview", "jsonable"]
