"""Jobs in a supervised worker process (issue 18): the server's default execution back end.

One server per test module keeps the cost to one or two worker starts (each imports torch and
the packs: seconds on this machine). The worker's death and the kill after an ignored interrupt
are shown with a node that crashes (ctypes) and one that sleeps without progress points.
"""
from __future__ import annotations

import os
import time

import pytest

from nodegraph.workers import EnvRecipe, JobRequest, ProcessBackend

from tests.server.conftest import ServerThread, make_env
from tests.server.helpers import L, Events, picture_workflow, submit, wait_finished

GRACE = 1.0


@pytest.fixture(scope="module")
def process_server(tmp_path_factory, builtin_registry):
    base = tmp_path_factory.mktemp("worker-process")
    env = make_env(base / "base", builtin_registry)
    with ServerThread(env, base / "data", ui_dir=base / "no-ui", in_process=False, interrupt_grace=GRACE) as s:
        yield s




def test_a_job_runs_in_the_worker_process_with_its_events_previews_and_files(process_server):
    events = Events(process_server.ws_url, "wp")
    with process_server.client() as http:
        job_id = submit(http, picture_workflow(steps=3, size=8, prefix="wp"), client="wp")
        seen = [e for e, _ in events.until_done(job_id, timeout=120)]
        job = wait_finished(http, job_id)
        stats = http.get("/v1/system_stats").json()
    events.close()
    assert job["status"] == "success", job["errors"]
    # the executor's order, as in-process, with the final executing after the history row
    assert seen == ["execution_start", "execution_cached", "executing", "progress", "progress", "progress",
                    "executing", "executed", "execution_success", "executing"]
    assert [p["node"] for p in events.previews] == ["1", "1", "1"]
    assert all(p["image"].startswith(b"\x89PNG") for p in events.previews)
    image = job["outputs"]["2"]["images"][0]
    assert (process_server.state.env.folders.output / image["filename"]).is_file()
    worker = stats["worker"]
    assert worker["backend"] == "process" and worker["pid"] not in (None, os.getpid())
    assert worker["jobs_run"] >= 1 and stats["cache"]["entries"] >= 2  # the worker's cache, not the server's


def test_a_node_that_ignores_an_interrupt_gets_its_worker_killed_and_the_queue_goes_on(process_server):
    stubborn = {"version": 1, "nodes": {"1": {"type": "Stubborn", "inputs": {"seconds": 30.0}},
                                        "2": {"type": "PreviewAny", "inputs": {"source": L("1")}}}}
    with process_server.client() as http:
        pid = http.get("/v1/system_stats").json()["worker"]["pid"]
        stuck = submit(http, stubborn)
        after = submit(http, picture_workflow(steps=1, size=8, seed=7, prefix="after-kill"))
        deadline = time.monotonic() + 60
        while http.get("/v1/status").json()["running"] != stuck:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)  # inside the node
        began = time.monotonic()
        assert http.post("/v1/interrupt", json={"job_id": stuck}).json() == {"interrupted": True}
        job = wait_finished(http, stuck)
        took = time.monotonic() - began
        assert wait_finished(http, after)["status"] == "success"
        restarted = http.get("/v1/system_stats").json()["worker"]
    assert job["status"] == "interrupted"
    assert GRACE * 0.9 <= took < GRACE + 10
    [error] = job["errors"]
    assert error["exception_type"] == "WorkerRestarted" and error["node_id"] == "1"
    assert "did not stop within 1 s" in error["exception_message"] and "Stubborn" in error["exception_message"]
    assert restarted["pid"] != pid and restarted["restarts"] >= 1


def test_a_worker_that_crashes_fails_its_job_with_the_signal_and_is_restarted(process_server):
    crash = {"version": 1, "nodes": {"1": {"type": "Segfault", "inputs": {"value": 1}},
                                     "2": {"type": "PreviewAny", "inputs": {"source": L("1")}}}}
    events = Events(process_server.ws_url, "crash")
    with process_server.client() as http:
        crashed = submit(http, crash, client="crash")
        after = submit(http, picture_workflow(steps=1, size=8, seed=8, prefix="after-crash"), client="crash")
        crash_events = events.until_done(crashed, timeout=120)
        job = wait_finished(http, crashed)
        assert wait_finished(http, after)["status"] == "success"
    events.close()
    assert job["status"] == "error"
    [error] = job["errors"]
    assert error["exception_type"] == "WorkerDied" and error["node_id"] == "1" and error["node_type"] == "Segfault"
    assert "SIGSEGV" in error["exception_message"]
    names = [e for e, _ in crash_events]
    assert names[-2:] == ["execution_error", "executing"] and names.count("execution_start") == 1


def test_the_backend_keeps_its_cache_warm_between_jobs_and_frees_it_on_request(server_env):
    backend = ProcessBackend(EnvRecipe.of(server_env), interrupt_grace=GRACE)
    try:
        backend.start()
        workflow = picture_workflow(steps=2, size=8, prefix="warm")
        received = []
        first = backend.submit(JobRequest("a", workflow), lambda e, d, png: received.append((e, d))).result(120)
        assert first.status == "success", first.errors
        received.clear()
        second = backend.submit(JobRequest("b", workflow), lambda e, d, png: received.append((e, d))).result(120)
        assert second.status == "success"
        cached = [d["nodes"] for e, d in received if e == "execution_cached"]
        assert cached == [["1", "2"]]  # every result came from the worker's cache (listed as ComfyUI does): nothing ran
        assert backend.free(False, True)["cache_entries_cleared"] >= 2
        assert backend.stats()["cache"]["entries"] == 0
    finally:
        backend.close()
    assert backend.pid is None
