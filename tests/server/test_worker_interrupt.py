"""The worker's interrupts act on one job's own RunControl (issue 14: run state belongs to the run).

Driven directly (no HTTP): a real Worker thread, an in-memory JobStore and an EventHub with no
loop attached (events go nowhere)."""
from __future__ import annotations

import threading
import time

import pytest

from nodegraph.queue import JobStore
from nodegraph.server.events import EventHub
from nodegraph.server.worker import Worker

from tests.server.helpers import picture_workflow


@pytest.fixture
def worker(server_env):
    store = JobStore(":memory:")
    worker = Worker(server_env, store, EventHub())
    yield worker
    worker.stop()
    store.close()


def wait_finished(store, job_id, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = store.get(job_id)
        if job.status not in ("pending", "running"):
            return job
        time.sleep(0.02)
    raise TimeoutError(f"job {job_id} still {store.get(job_id).status}")


def test_an_interrupt_that_arrives_before_the_executor_starts_is_honoured(worker):
    """The gap between the worker claiming a job and the executor running its first node: an interrupt
    made there is kept by the job's RunControl (no flag cleared at the start of the run)."""
    real_run = worker.executor.run

    def run_after_a_late_interrupt(workflow, **kw):
        assert worker.interrupt(kw["job_id"]) is True
        return real_run(workflow, **kw)

    worker.executor.run = run_after_a_late_interrupt
    worker.store.add("x", picture_workflow(steps=3))
    worker.start()
    job = wait_finished(worker.store, "x")
    assert job.status == "interrupted"
    assert [m[0] for m in job.messages][-1] == "execution_interrupted"


def test_interrupting_one_job_leaves_the_next_one_alone(worker):
    """Job x is interrupted mid-run; job y, queued behind it, runs to success, and an interrupt aimed at x
    once y runs is refused instead of stopping y."""
    y_started = threading.Event()
    refused = []
    real_run = worker.executor.run

    def run(workflow, **kw):
        if kw["job_id"] == "y":
            refused.append(worker.interrupt("x"))  # a late interrupt for the job before
            y_started.set()
        return real_run(workflow, **kw)

    worker.executor.run = run
    worker.store.add("x", picture_workflow(steps=400, delay=0.02))
    worker.store.add("y", picture_workflow(steps=3, prefix="after"))
    worker.start()
    deadline = time.monotonic() + 20
    while (worker.current is None or worker.current.job_id != "x") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker.interrupt("y") is False  # pending, not running: nothing to interrupt
    assert worker.interrupt("x") is True
    assert wait_finished(worker.store, "x").status == "interrupted"
    assert wait_finished(worker.store, "y").status == "success"
    assert y_started.is_set() and refused == [False]
