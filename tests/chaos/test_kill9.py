"""kill -9 of the server and of its worker process at random moments, 20 rounds (issue 18).

Each round queues a few small jobs (a picture made over two 50 ms steps, saved as an output PNG),
kills the server or the worker after a random delay, starts what was killed again, waits for the
queue to drain, and checks after every restart:
- no job lost: every job ever accepted is there, finished; none is listed twice in the history;
- a job that was running when its worker died fails with that reason, once; one running when the
  server died is run again (and fails only after a second death);
- every file the history refers to is a whole, readable PNG; no half-written temporary survives a
  server start;
- SQLite's integrity check passes.
"""
from __future__ import annotations

import random
import time

import pytest
from PIL import Image

from .harness import ServerProcess, integrity, picture, process_alive

pytestmark = pytest.mark.slow

ROUNDS = 20
JOBS_PER_ROUND = 4


def submit(http, k: int) -> str:
    r = http.post("/v1/jobs", json={"workflow": picture(k, f"chaos/r{k}")})
    assert r.status_code == 200, r.text
    return r.json()["job_id"]


def drain(http, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status = http.get("/v1/status").json()
        if status["queue_remaining"] == 0:
            return
        assert time.monotonic() < deadline, f"the queue did not drain: {status}"
        time.sleep(0.1)


def check_invariants(server: ServerProcess, http, accepted: list[str], after_server_start: bool) -> dict:
    items, total, offset = [], None, 0
    while total is None or offset < total:
        page = http.get("/v1/history", params={"offset": offset, "limit": 500}).json()
        items += page["items"]
        total, offset = page["total"], offset + 500
    ids = [j["job_id"] for j in items]
    assert len(ids) == len(set(ids)), "a job is listed twice in the history"
    assert set(ids) == set(accepted), f"lost: {set(accepted) - set(ids)}, unknown: {set(ids) - set(accepted)}"
    statuses = {}
    for job in items:
        statuses[job["status"]] = statuses.get(job["status"], 0) + 1
        if job["status"] == "success":
            [record] = job["outputs"]["2"]["images"]
            path = server.output / record["subfolder"] / record["filename"]
            with Image.open(path) as picture:
                picture.load()  # a truncated PNG raises here
                assert picture.size == (16, 16)
        else:
            [error] = job["errors"]
            assert error["exception_type"] in ("WorkerDied", "ServerStopped"), error
    if after_server_start:
        assert not list(server.output.rglob("*.nodegraph-partial")), "a half-written file survived the start"
    assert integrity(server.db_path) == "ok"
    return statuses


def test_kill9_of_server_and_worker_over_20_rounds(tmp_path):
    rng = random.Random(18)
    server = ServerProcess(tmp_path, interrupt_grace=2.0).start()
    accepted: list[str] = []
    k = 0
    try:
        for round_ in range(ROUNDS):
            with server.client() as http:
                worker = server.worker_pid()
                for _ in range(JOBS_PER_ROUND):
                    accepted.append(submit(http, k))
                    k += 1
                time.sleep(rng.uniform(0.0, 0.6))
            if round_ % 2 == 0:
                server.kill()
                assert integrity(server.db_path) == "ok"
                deadline = time.monotonic() + 10
                while process_alive(worker):  # the worker dies with the server
                    assert time.monotonic() < deadline, "the worker outlived the server"
                    time.sleep(0.05)
                server.start()
            else:
                server_pid = server.proc.pid
                import os
                import signal

                os.kill(worker, signal.SIGKILL)
                assert server.proc.poll() is None and server.proc.pid == server_pid
            with server.client() as http:
                drain(http)
                statuses = check_invariants(server, http, accepted, after_server_start=round_ % 2 == 0)
        print(f"{len(accepted)} jobs over {ROUNDS} kill -9 rounds: {statuses}")
        assert statuses.get("success", 0) >= len(accepted) // 2, statuses
    finally:
        server.stop()
