"""The worker process's side: build the Environment from its recipe, then run what the parent sends.

Messages (tuples over one multiprocessing Connection):
  parent -> child  ("run", [JobRequest, ...]) (one job, or several run as one cohort)
                   | ("interrupt", job_id) | ("free", unload, free_memory) | ("stop",)
  child -> parent  ("ready", pid, stats) | ("event", job_id, event, data, has_png) [+ PNG as raw bytes]
                   | ("done", job_id, JobOutcome, stats) | ("freed", result, stats)
A reader thread takes every message as it comes, so an interrupt reaches the running job's
RunControl at once; jobs and frees run in order on the main thread. When the parent goes away
(its end of the pipe closes) the worker exits.
"""
from __future__ import annotations

import os
import queue
import signal
import sys
import threading

from ..node import RunControl


def _die_with_parent() -> None:
    """Linux: be killed when the thread that started us exits (e.g. the server killed with -9)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


WORKER_NICENESS = 5  # the front answers in short bursts; on a busy CPU they should come first


def main(conn, recipe) -> None:
    _die_with_parent()
    try:
        os.nice(WORKER_NICENESS)
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the whole group: the server decides
    from .runner import JobRunner

    runner = JobRunner(recipe.build())
    send_lock = threading.Lock()
    commands: queue.Queue = queue.Queue()
    running: dict = {}  # job_id -> RunControl of the job now running
    early: set[str] = set()  # interrupts that came before their job started
    guard = threading.Lock()

    def send(message, raw: bytes | None = None) -> None:
        with send_lock:
            conn.send(message)
            if raw is not None:
                conn.send_bytes(raw)

    def read() -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                os._exit(0)  # the parent is gone: nobody to report to
            if message[0] == "interrupt":
                with guard:
                    control = running.get(message[1])
                    if control is None:
                        early.add(message[1])
                if control is not None:
                    control.interrupt()
            else:
                commands.put(message)

    threading.Thread(target=read, name="nodegraph-worker-reader", daemon=True).start()
    send(("ready", os.getpid(), runner.stats()))
    while True:
        message = commands.get()
        if message[0] == "stop":
            break
        if message[0] == "free":
            result = runner.free(message[1], message[2])
            send(("freed", result, runner.stats()))
            continue
        jobs = message[1]
        items = []
        with guard:
            for job in jobs:
                control = RunControl()
                running[job.job_id] = control
                if job.job_id in early:
                    early.discard(job.job_id)
                    control.interrupt()
                items.append((job, control, lambda event, data, png, job_id=job.job_id: send(
                    ("event", job_id, event, data, png is not None), png)))

        def done(i: int, outcome, jobs=jobs) -> None:
            with guard:
                running.pop(jobs[i].job_id, None)
            send(("done", jobs[i].job_id, outcome, runner.stats()))

        runner.run_together(items, on_done=done)
    conn.close()
