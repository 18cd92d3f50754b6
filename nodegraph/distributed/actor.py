"""The worker actor: an Executor (output cache + device manager) built from the server's
EnvRecipe, running one job at a time and streaming its events back as the job runs.

`run` is a Ray streaming generator: it yields ("event", name, data, png) items and lastly
("done", outcome, stats). The actor is threaded (max_concurrency > 1) so `interrupt` reaches the
running job's RunControl while `run` streams."""
from __future__ import annotations

import os
import queue
import socket
import threading

from ..node import RunControl
from ..workers.runner import JobRunner


class WorkerActor:
    def __init__(self, recipe, name: str) -> None:
        self.name = name
        self.runner = JobRunner(recipe.build())
        self._lock = threading.Lock()
        self._controls: dict[str, RunControl] = {}
        self._early: set[str] = set()  # interrupts that came before their job
        self.current: str | None = None

    def info(self) -> dict:
        return {"name": self.name, "pid": os.getpid(), "host": socket.gethostname(),
                "device": str(self.runner.env.devices.device)}

    def run(self, job):
        control = RunControl()
        with self._lock:
            self._controls[job.job_id] = control
            self.current = job.job_id
            if job.job_id in self._early:
                self._early.discard(job.job_id)
                control.interrupt()
        items: queue.Queue = queue.Queue()

        def work() -> None:
            try:
                outcome = self.runner.run(job, control, lambda e, d, p: items.put(("event", e, d, p)))
            finally:
                with self._lock:
                    self._controls.pop(job.job_id, None)
                    self.current = None
            items.put(("done", outcome, self.stats()))

        threading.Thread(target=work, name=f"nodegraph-job-{job.job_id}", daemon=True).start()
        while True:
            item = items.get()
            yield item
            if item[0] == "done":
                return

    def interrupt(self, job_id: str) -> bool:
        with self._lock:
            control = self._controls.get(job_id)
            if control is None:
                self._early.add(job_id)
                return False
        control.interrupt()
        return True

    def free(self, unload_models: bool, free_memory: bool) -> dict:
        return self.runner.free(unload_models, free_memory)

    def stats(self) -> dict:
        return {**self.runner.stats(), **self.info(), "current_job": self.current}  # models, busy_seconds: the runner's
