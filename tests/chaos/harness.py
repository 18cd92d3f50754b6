"""A real server in its own process (`python -m nodegraph.server`, worker process included), so a
test can kill -9 it or its worker and start it again on the same folders. It loads the test plugin
alone (no built-in packs): each start imports less, and the chaos rounds start many."""
from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.server.plugin_source import write_plugin

ROOT = Path(__file__).resolve().parents[2]
DB_NAME = "nodegraph-jobs.sqlite3"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    def __init__(self, workdir: Path, interrupt_grace: float = 2.0) -> None:
        self.workdir = workdir
        self.grace = interrupt_grace
        for name in ("models", "output", "input", "temp", "data"):
            (workdir / name).mkdir(parents=True, exist_ok=True)
        write_plugin(workdir / "custom_nodes")
        self.proc: subprocess.Popen | None = None
        self.url = ""

    @property
    def db_path(self) -> Path:
        return self.workdir / "data" / DB_NAME

    @property
    def output(self) -> Path:
        return self.workdir / "output"

    def start(self, timeout: float = 180.0) -> "ServerProcess":
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nodegraph.server", "--port", str(port), "--base", str(self.workdir),
             "--data-dir", str(self.workdir / "data"), "--plugins", str(self.workdir / "custom_nodes"),
             "--interrupt-grace", str(self.grace), "--device", "cpu", "--no-builtins"],
            cwd=str(self.workdir), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self.proc.stderr.read().decode()[-3000:]}")
            try:
                if httpx.get(self.url + "/v1/status", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError("the server did not start")

    def worker_pid(self, timeout: float = 120.0) -> int:
        """The worker process's pid, once it is up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = httpx.get(self.url + "/v1/system_stats", timeout=10).json()["worker"].get("pid")
            if pid:
                return pid
            time.sleep(0.1)
        raise TimeoutError("no worker process")

    def kill(self) -> None:
        """kill -9 the server (its worker follows it: it dies with the thread that started it)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


def integrity(db_path: Path) -> str:
    db = sqlite3.connect(db_path, timeout=30)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def L(node: str, output: int = 0) -> dict:
    return {"node": node, "output": output}


def picture(seed: int, prefix: str, steps: int = 2, delay: float = 0.05) -> dict:
    """A 16x16 picture made over `steps` steps of `delay` s, saved as an output PNG (test plugin only)."""
    return {"version": 1, "nodes": {
        "1": {"type": "GradientSteps", "inputs": {"steps": steps, "size": 16, "seed": seed, "delay": delay}},
        "2": {"type": "QuickSave", "inputs": {"images": L("1"), "filename_prefix": prefix}}}}


def shown(node_type: str, **inputs) -> dict:
    return {"version": 1, "nodes": {"1": {"type": node_type, "inputs": inputs},
                                    "2": {"type": "ShowInt", "inputs": {"value": L("1")}}}}
