"""Queue storage (issue 18): a submission's workflow stored once whatever its copies, paged listings,
a database from before the workflows table migrated, durable SQLite settings; atomic image writes."""
from __future__ import annotations

import json
import os
import sqlite3

import pytest
import torch

from nodegraph.images import PARTIAL_SUFFIX, remove_partial_files, save_images, write_atomically
from nodegraph.node import Context
from nodegraph.queue import JobStore


def big_workflow(size: int = 200_000) -> dict:
    return {"version": 1, "nodes": {"1": {"type": "PrimitiveString", "inputs": {"value": "x" * size}}}}


@pytest.fixture
def store(tmp_path):
    s = JobStore(tmp_path / "jobs.sqlite3")
    yield s
    s.close()


def stored_bytes(store) -> int:
    return store._db.execute("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM workflows").fetchone()[0]


def test_copies_of_one_submission_store_the_workflow_once(store):
    """Issue 18: number=100 with a 2.9 MB body wrote 269 MB; now the document is stored once."""
    jobs = store.add_many([f"j{k}" for k in range(100)], big_workflow())
    assert [j.number for j in jobs] == list(range(100))
    assert 200_000 < stored_bytes(store) < 201_000
    assert [j.job_id for j in store.pending()] == [f"j{k}" for k in range(100)]
    listed = store.pending()
    assert all(j.workflow is listed[0].workflow for j in listed)  # parsed once for the whole listing
    assert store.get("j42").workflow == big_workflow()


def test_a_workflow_is_forgotten_with_the_last_job_that_refers_to_it(store):
    store.add_many(["a", "b"], big_workflow(10))
    store.add("c", big_workflow(20))
    assert store.delete_pending("a") and stored_bytes(store) > 0
    store.clear_pending()
    assert stored_bytes(store) == 0
    store.add("d", big_workflow(10))
    job = store.claim_next()
    store.finish(job.job_id, "success", {}, [], [])
    assert store.delete_history("d") and stored_bytes(store) == 0


def test_history_trimming_forgets_workflows_too(tmp_path):
    store = JobStore(tmp_path / "j.sqlite3", max_history=2)
    for k in range(4):
        store.add(str(k), big_workflow(10 + k))
        store.finish(store.claim_next().job_id, "success", {}, [], [])
    assert store.history(0, 10)[1] == 2
    assert store._db.execute("SELECT COUNT(*) FROM workflows").fetchone()[0] == 2
    store.close()


def test_copies_at_the_front_keep_their_order_ahead_of_the_queue(store):
    store.add("old", big_workflow(1))
    store.add_many(["f1", "f2", "f3"], big_workflow(2), front=True)
    assert [j.job_id for j in store.pending()] == ["f1", "f2", "f3", "old"]


def test_pending_jobs_page_with_offset_and_limit(store):
    store.add_many([f"p{k}" for k in range(10)], big_workflow(1))
    assert [j.job_id for j in store.pending(3, 4)] == ["p3", "p4", "p5", "p6"]
    assert [j.job_id for j in store.pending(8, 100)] == ["p8", "p9"]
    assert store.pending(0, 0) == []


def test_sqlite_runs_in_wal_mode_with_full_sync(store):
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: commits survive a power cut


def test_a_database_from_before_the_workflows_table_is_migrated(tmp_path):
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE jobs (job_id TEXT PRIMARY KEY, number INTEGER NOT NULL, position REAL NOT NULL,
            status TEXT NOT NULL, client_id TEXT, workflow TEXT NOT NULL, extra TEXT NOT NULL, targets TEXT,
            outputs TEXT, errors TEXT, messages TEXT, created REAL NOT NULL, started REAL, finished REAL,
            attempts INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);""")
    same = json.dumps(big_workflow(5), separators=(",", ":"))
    rows = [("a", 0, 0.0, "pending", same), ("b", 1, 1.0, "pending", same),
            ("c", 2, 2.0, "success", json.dumps(big_workflow(7)))]
    db.executemany("INSERT INTO jobs (job_id, number, position, status, workflow, extra, created) "
                   "VALUES (?, ?, ?, ?, ?, '{}', 0)", rows)
    db.commit()
    db.close()
    store = JobStore(path)
    try:
        assert [j.job_id for j in store.pending()] == ["a", "b"]
        assert store.get("a").workflow == big_workflow(5) and store.get("c").workflow == big_workflow(7)
        assert store._db.execute("SELECT COUNT(*) FROM workflows").fetchone()[0] == 2
        columns = {r[1] for r in store._db.execute("PRAGMA table_info(jobs)")}
        assert "workflow" not in columns and "workflow_hash" in columns
        assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        store.close()


def test_native_queue_listing_pages_and_counts(server, http):
    http.post("/v1/queue/pause")
    r = http.post("/v1/jobs", json={"workflow": {"version": 1, "nodes": {
        "1": {"type": "PrimitiveInt", "inputs": {"value": 3}},
        "2": {"type": "PreviewAny", "inputs": {"source": {"node": "1", "output": 0}}}}}, "number": 7})
    ids = r.json()["job_ids"]
    page = http.get("/v1/queue", params={"offset": 2, "limit": 3}).json()
    assert [j["job_id"] for j in page["pending"]] == ids[2:5] and page["pending_total"] == 7
    assert http.get("/v1/queue", params={"limit": 10_000}).status_code == 422  # above the page limit


# --- nothing half-written -------------------------------------------------------------------------
def test_a_failed_write_leaves_neither_the_final_name_nor_a_temporary(tmp_path):
    target = tmp_path / "out.png"

    def half_then_fail(f):
        f.write(b"\x89PNG half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_atomically(target, half_then_fail)
    assert list(tmp_path.iterdir()) == []


def test_a_write_replaces_the_final_name_only_when_complete(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    seen = []
    write_atomically(target, lambda f: (f.write(b"new"), seen.append(target.read_bytes())))
    assert seen == [b"old"] and target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_save_images_writes_whole_pngs_and_partial_files_are_cleaned(env):
    ctx = Context(env, node_id="9", node_type="SaveImage", workflow={"version": 1, "nodes": {}})
    records = save_images(ctx, torch.rand(2, 4, 4, 3), "sub/pic")
    folder = env.folders.output / "sub"
    assert sorted(p.name for p in folder.iterdir()) == [r["filename"] for r in records]
    orphan = folder / f".pic_00003_.png.1234abcd{PARTIAL_SUFFIX}"
    orphan.write_bytes(b"\x89PNG trunc")
    (folder / "keep.png").write_bytes(b"x")
    assert remove_partial_files(env.folders.output) == 1
    assert not orphan.exists() and (folder / "keep.png").exists()
    assert save_images(ctx, torch.rand(1, 4, 4, 3), "sub/pic")[0]["filename"] == "pic_00003_.png"
    assert all(os.path.getsize(folder / r["filename"]) > 0 for r in records)
