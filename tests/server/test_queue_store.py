"""The SQLite job store on its own: order, front, pause, history paging, and recovery after a crash."""
from __future__ import annotations

import pytest

from nodegraph.queue import MAX_ATTEMPTS, JobStore

WF = {"version": 1, "nodes": {}}


@pytest.fixture
def store(tmp_path):
    s = JobStore(tmp_path / "jobs.sqlite3")
    yield s
    s.close()


def ids(jobs):
    return [j.job_id for j in jobs]


def test_fifo_order_front_delete_clear(store):
    for name in "abcd":
        store.add(name, WF)
    assert ids(store.pending()) == list("abcd")
    assert store.move_to_front("c")
    assert ids(store.pending()) == list("cabd")
    store.add("e", WF, front=True)
    assert ids(store.pending()) == list("ecabd")
    assert store.delete_pending("a") and not store.delete_pending("a")
    assert store.claim_next().job_id == "e"
    assert not store.move_to_front("e") and not store.delete_pending("e")  # running: not queued any more
    assert store.clear_pending() == 3
    assert store.pending() == [] and ids(store.running()) == ["e"]


def test_numbers_increase_and_pause_stops_claims(store):
    numbers = [store.add(str(k), WF).number for k in range(3)]
    assert numbers == [0, 1, 2]
    store.set_paused(True)
    assert store.paused and store.claim_next() is None
    store.set_paused(False)
    assert store.claim_next().job_id == "0"


def test_finish_and_history_pages_newest_first(store):
    for k in range(5):
        store.add(str(k), WF, client_id="me", extra={"k": k})
        job = store.claim_next()
        store.finish(job.job_id, "success" if k % 2 == 0 else "error", {"9": {"text": [str(k)]}}, [], [["x", {}]])
    items, total = store.history(0, 2)
    assert total == 5 and ids(items) == ["4", "3"]
    items, _ = store.history(4, 10)
    assert ids(items) == ["0"]
    job = store.get("3")
    assert job.status == "error" and job.client_id == "me" and job.extra == {"k": 3}
    assert job.outputs == {"9": {"text": ["3"]}} and job.messages == [["x", {}]]
    assert job.started is not None and job.finished >= job.started
    assert store.delete_history("3") and store.history(0, 10)[1] == 4
    assert store.clear_history() == 4


def test_everything_survives_reopening(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    store = JobStore(path)
    store.add("done", WF)
    store.finish(store.claim_next().job_id, "success", {"1": {"images": []}}, [], [])
    for name in ("p1", "p2"):
        store.add(name, {"version": 1, "nodes": {"1": {"type": "X", "inputs": {"v": name}}}})
    store.set_paused(True)
    store.close()

    again = JobStore(path)
    assert ids(again.pending()) == ["p1", "p2"] and again.paused
    assert again.pending()[1].workflow["nodes"]["1"]["inputs"]["v"] == "p2"
    assert ids(again.history(0, 10)[0]) == ["done"]
    assert again.add("p3", WF).number == 3
    again.close()


def test_job_running_at_a_crash_is_requeued_first_then_failed_if_it_keeps_crashing(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    store = JobStore(path)
    store.add("crasher", WF)
    store.add("next", WF)
    assert store.claim_next().job_id == "crasher"
    store.close()  # the process "dies" with the job running

    for attempt in range(1, MAX_ATTEMPTS):
        store = JobStore(path)
        assert store.recovered == ["crasher"]
        assert ids(store.pending()) == ["crasher", "next"]  # back at the front
        assert store.claim_next().attempts == attempt + 1
        store.close()

    store = JobStore(path)  # it was started MAX_ATTEMPTS times: not again
    job = store.get("crasher")
    assert job.status == "error" and "not retried" in job.errors[0]["exception_message"]
    assert ids(store.pending()) == ["next"]
    store.close()


def test_clean_shutdown_requeue_does_not_count_an_attempt(store):
    store.add("a", WF)
    store.add("b", WF)
    job = store.claim_next()
    store.requeue(job.job_id)
    again = store.claim_next()
    assert again.job_id == "a" and again.attempts == 1


def test_history_is_bounded(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3", max_history=3)
    for k in range(5):
        store.add(str(k), WF)
        store.finish(store.claim_next().job_id, "success", {}, [], [])
    items, total = store.history(0, 10)
    assert total == 3 and ids(items) == ["4", "3", "2"]
    store.close()
