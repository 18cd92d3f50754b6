"""Job queue and history, persisted in SQLite (stdlib sqlite3), so a restart loses no job.

A job is one run of one workflow. Its life: pending -> running -> success | error | interrupted.
Pending jobs are ordered by `position` (move-to-front gives a position below every other);
finished jobs form the history, newest first. `number` is the submission counter ComfyUI's
protocol reports.

A job that was running when the server died (its row still says "running" at the next start):
it is re-queued at the front of the queue, unless it had already been started MAX_ATTEMPTS
times — then it is marked failed, so a job that kills the process cannot crash-loop the server.
A job interrupted by a clean shutdown is put back to pending without counting an attempt.

A workflow is stored once per submission, however many copies (`number`) it queues: the
`workflows` table holds each distinct document once, keyed by its content hash, and jobs refer to
it; a document no job refers to any more is deleted with its last job. Listings are paged.

One JobStore is shared by the HTTP handlers and the dispatcher thread: every call takes a lock and
runs in its own short transaction. SQLite runs in WAL mode with synchronous=FULL: a job the server
accepted survives a power cut, not only a crash of the process.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PENDING, RUNNING = "pending", "running"
FINISHED = ("success", "error", "interrupted")
MAX_ATTEMPTS = 2
MAX_HISTORY = 10_000  # finished jobs kept; the oldest are forgotten beyond this (their files stay)
PARSED_WORKFLOWS = 64  # parsed documents kept in memory, so a listing of many copies parses one

_SCHEMA = """
CREATE TABLE IF NOT EXISTS workflows (
    hash TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    number INTEGER NOT NULL,
    position REAL NOT NULL,
    status TEXT NOT NULL,
    client_id TEXT,
    workflow_hash TEXT NOT NULL,
    extra TEXT NOT NULL,
    targets TEXT,
    outputs TEXT,
    errors TEXT,
    messages TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (status, position);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished);
CREATE INDEX IF NOT EXISTS jobs_workflow ON jobs (workflow_hash);
"""
# deletes the documents no job refers to; run after deleting jobs
_FORGET_WORKFLOWS = ("DELETE FROM workflows WHERE NOT EXISTS "
                     "(SELECT 1 FROM jobs WHERE jobs.workflow_hash = workflows.hash)")


def workflow_hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@dataclass
class Job:
    job_id: str
    number: int
    status: str
    workflow: dict  # native workflow document; shared by the copies of one submission: read-only
    extra: dict = field(default_factory=dict)  # handed to nodes as ctx.extra (client_id, metadata_text ...)
    client_id: str | None = None
    targets: list[str] | None = None  # output nodes to run (None: every output node)
    outputs: dict = field(default_factory=dict)  # output node id -> UI outputs
    errors: list = field(default_factory=list)
    messages: list = field(default_factory=list)  # [event, data] pairs kept for ComfyUI's history
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    attempts: int = 0


class JobStore:
    def __init__(self, path: str | Path, max_history: int = MAX_HISTORY) -> None:
        self.path = Path(path)
        self.max_history = max_history
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._migrate()
        self._db.executescript(_INDEXES)
        self._parsed: OrderedDict[str, dict] = OrderedDict()
        self.recovered = self._recover()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- internals ----------------------------------------------------------------------------
    def _tx(self):
        return _Transaction(self._db, self._lock)

    def _migrate(self) -> None:
        """A database from before the workflows table: move each job's document there, once."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "workflow" not in columns:
            return
        self._db.create_function("ng_workflow_hash", 1, workflow_hash, deterministic=True)
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO workflows (hash, body) "
                       "SELECT ng_workflow_hash(workflow), workflow FROM jobs")
            if "workflow_hash" not in columns:
                db.execute("ALTER TABLE jobs ADD COLUMN workflow_hash TEXT")
            db.execute("UPDATE jobs SET workflow_hash = ng_workflow_hash(workflow)")
            db.execute("ALTER TABLE jobs DROP COLUMN workflow")

    def _workflows(self, hashes) -> dict[str, dict]:
        """Parsed documents by hash, from memory when recently read (lock held)."""
        found, wanted = {}, []
        for h in set(hashes):
            if h in self._parsed:
                self._parsed.move_to_end(h)
                found[h] = self._parsed[h]
            else:
                wanted.append(h)
        for k in range(0, len(wanted), 500):
            chunk = wanted[k:k + 500]
            rows = self._db.execute(f"SELECT hash, body FROM workflows WHERE hash IN ({','.join('?' * len(chunk))})",
                                    chunk).fetchall()
            for h, body in rows:
                found[h] = self._parsed[h] = json.loads(body)
        while len(self._parsed) > PARSED_WORKFLOWS:
            self._parsed.popitem(last=False)
        return found

    def _jobs(self, rows: list[sqlite3.Row]) -> list[Job]:
        """Jobs from rows (lock held)."""
        documents = self._workflows(row["workflow_hash"] for row in rows)

        def load(text, default):
            return json.loads(text) if text else default

        return [Job(job_id=row["job_id"], number=row["number"], status=row["status"],
                    workflow=documents.get(row["workflow_hash"], {}), extra=load(row["extra"], {}),
                    client_id=row["client_id"], targets=load(row["targets"], None), outputs=load(row["outputs"], {}),
                    errors=load(row["errors"], []), messages=load(row["messages"], []), created=row["created"],
                    started=row["started"], finished=row["finished"], attempts=row["attempts"])
                for row in rows]

    def _recover(self) -> list[str]:
        """Deal with jobs left "running" by a server that died; returns their ids."""
        with self._tx() as db:
            rows = db.execute("SELECT job_id, attempts FROM jobs WHERE status = ?", (RUNNING,)).fetchall()
            front = self._front_position(db)
            for row in rows:
                if row["attempts"] >= MAX_ATTEMPTS:
                    error = {"node_id": None, "node_type": None, "exception_type": "ServerStopped",
                             "exception_message": f"the server stopped while this job was running, "
                                                  f"{row['attempts']} times; it is not retried again",
                             "traceback": []}
                    db.execute("UPDATE jobs SET status='error', errors=?, finished=? WHERE job_id=?",
                               (json.dumps([error]), time.time(), row["job_id"]))
                else:
                    front -= 1
                    db.execute("UPDATE jobs SET status=?, position=?, started=NULL WHERE job_id=?",
                               (PENDING, front, row["job_id"]))
            return [row["job_id"] for row in rows]

    @staticmethod
    def _front_position(db) -> float:
        low = db.execute("SELECT MIN(position) FROM jobs WHERE status = ?", (PENDING,)).fetchone()[0]
        return low if low is not None else 0.0

    # --- submitting ---------------------------------------------------------------------------
    def add(self, job_id: str, workflow: dict, *, extra: dict | None = None, client_id: str | None = None,
            targets: list[str] | None = None, front: bool = False) -> Job:
        return self.add_many([job_id], workflow, extra=extra, client_id=client_id, targets=targets, front=front)[0]

    def add_many(self, job_ids: list[str], workflow: dict, *, extra: dict | None = None,
                 client_id: str | None = None, targets: list[str] | None = None, front: bool = False) -> list[Job]:
        """Queue one copy of `workflow` per id, in one transaction, storing the document once. The copies
        keep the order of `job_ids` (at the front too: the first id runs first)."""
        now = time.time()
        body = _dumps(workflow)
        digest = workflow_hash(body)
        extra_text = _dumps(extra or {})
        targets_text = _dumps(targets) if targets is not None else None
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO workflows (hash, body) VALUES (?, ?)", (digest, body))
            number = db.execute("SELECT COALESCE(MAX(number), -1) + 1 FROM jobs").fetchone()[0]
            if front:
                position = self._front_position(db) - len(job_ids)
            else:
                high = db.execute("SELECT MAX(position) FROM jobs WHERE status = ?", (PENDING,)).fetchone()[0]
                position = (high + 1) if high is not None else float(number)
            rows = [(job_id, number + k, position + k, PENDING, client_id, digest, extra_text, targets_text, now)
                    for k, job_id in enumerate(job_ids)]
            db.executemany("INSERT INTO jobs (job_id, number, position, status, client_id, workflow_hash, extra, "
                           "targets, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            self._parsed[digest] = workflow
        return [Job(job_id, number + k, PENDING, workflow, extra or {}, client_id, targets, created=now)
                for k, job_id in enumerate(job_ids)]

    def exists(self, job_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM jobs WHERE job_id=?", (job_id,)).fetchone() is not None

    # --- the worker's side ----------------------------------------------------------------------
    def claim_next(self) -> Job | None:
        """Take the first pending job (unless the queue is paused) and mark it running."""
        with self._tx() as db:
            if self._paused(db):
                return None
            row = db.execute("SELECT * FROM jobs WHERE status = ? ORDER BY position, number LIMIT 1",
                             (PENDING,)).fetchone()
            if row is None:
                return None
            now = time.time()
            db.execute("UPDATE jobs SET status=?, started=?, attempts=attempts+1 WHERE job_id=?",
                       (RUNNING, now, row["job_id"]))
            job = self._jobs([row])[0]
        job.status, job.started, job.attempts = RUNNING, now, job.attempts + 1
        return job

    def finish(self, job_id: str, status: str, outputs: dict, errors: list, messages: list) -> None:
        if status not in FINISHED:
            raise ValueError(f"not a final status: {status!r}")
        marks = ",".join("?" * len(FINISHED))
        with self._tx() as db:
            db.execute("UPDATE jobs SET status=?, outputs=?, errors=?, messages=?, finished=? WHERE job_id=?",
                       (status, _dumps(outputs), _dumps(errors), _dumps(messages), time.time(), job_id))
            trimmed = db.execute(f"DELETE FROM jobs WHERE job_id IN (SELECT job_id FROM jobs WHERE status IN "
                                 f"({marks}) ORDER BY finished DESC, number DESC LIMIT -1 OFFSET ?)",
                                 (*FINISHED, self.max_history)).rowcount
            if trimmed:
                db.execute(_FORGET_WORKFLOWS)

    def requeue(self, job_id: str) -> None:
        """Put a running job back at the front (clean shutdown); the attempt does not count."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET status=?, position=?, started=NULL, attempts=MAX(attempts-1, 0) "
                       "WHERE job_id=? AND status=?", (PENDING, self._front_position(db) - 1, job_id, RUNNING))

    # --- queue --------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE job_id=?", (job_id,)).fetchone()
            return self._jobs([row])[0] if row is not None else None

    def running(self) -> list[Job]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE status=? ORDER BY started", (RUNNING,)).fetchall()
            return self._jobs(rows)

    def pending(self, offset: int = 0, limit: int | None = None) -> list[Job]:
        """Pending jobs in the order they will run; a page of them with offset/limit."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE status=? ORDER BY position, number LIMIT ? OFFSET ?",
                                    (PENDING, -1 if limit is None else max(0, limit), max(0, offset))).fetchall()
            return self._jobs(rows)

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {status: n for status, n in rows}

    def delete_pending(self, job_id: str) -> bool:
        with self._tx() as db:
            return _forgetting(db, db.execute("DELETE FROM jobs WHERE job_id=? AND status=?",
                                              (job_id, PENDING)).rowcount) > 0

    def clear_pending(self) -> int:
        with self._tx() as db:
            return _forgetting(db, db.execute("DELETE FROM jobs WHERE status=?", (PENDING,)).rowcount)

    def move_to_front(self, job_id: str) -> bool:
        with self._tx() as db:
            return db.execute("UPDATE jobs SET position=? WHERE job_id=? AND status=?",
                              (self._front_position(db) - 1, job_id, PENDING)).rowcount > 0

    # --- pause --------------------------------------------------------------------------------
    @staticmethod
    def _paused(db) -> bool:
        row = db.execute("SELECT value FROM settings WHERE key='paused'").fetchone()
        return row is not None and row[0] == "1"

    @property
    def paused(self) -> bool:
        with self._lock:
            return self._paused(self._db)

    def set_paused(self, paused: bool) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO settings (key, value) VALUES ('paused', ?) "
                       "ON CONFLICT(key) DO UPDATE SET value=excluded.value", ("1" if paused else "0",))

    # --- history ------------------------------------------------------------------------------
    def history(self, offset: int = 0, limit: int = 50) -> tuple[list[Job], int]:
        """Finished jobs, newest first, and how many there are in all."""
        marks = ",".join("?" * len(FINISHED))
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM jobs WHERE status IN ({marks})", FINISHED).fetchone()[0]
            rows = self._db.execute(f"SELECT * FROM jobs WHERE status IN ({marks}) "
                                    "ORDER BY finished DESC, number DESC LIMIT ? OFFSET ?",
                                    (*FINISHED, max(0, limit), max(0, offset))).fetchall()
            return self._jobs(rows), total

    def delete_history(self, job_id: str) -> bool:
        marks = ",".join("?" * len(FINISHED))
        with self._tx() as db:
            return _forgetting(db, db.execute(f"DELETE FROM jobs WHERE job_id=? AND status IN ({marks})",
                                              (job_id, *FINISHED)).rowcount) > 0

    def clear_history(self) -> int:
        marks = ",".join("?" * len(FINISHED))
        with self._tx() as db:
            return _forgetting(db, db.execute(f"DELETE FROM jobs WHERE status IN ({marks})", FINISHED).rowcount)


class _Transaction:
    """`with store._tx() as db:` — the store's lock plus BEGIN IMMEDIATE ... COMMIT/ROLLBACK."""

    def __init__(self, db: sqlite3.Connection, lock) -> None:
        self.db, self.lock = db, lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        return self.db

    def __exit__(self, kind, value, tb) -> None:
        try:
            self.db.execute("ROLLBACK" if kind is not None else "COMMIT")
        finally:
            self.lock.release()


def _forgetting(db: sqlite3.Connection, deleted: int) -> int:
    """After deleting `deleted` jobs: drop the documents nothing refers to now."""
    if deleted:
        db.execute(_FORGET_WORKFLOWS)
    return deleted


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))
