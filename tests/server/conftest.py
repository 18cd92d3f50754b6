"""Fixtures: a real uvicorn server on a free loopback port, in a thread, with a test plugin."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from nodegraph.environment import Environment
from nodegraph.folders import Folders
from nodegraph.registry import Registry
from nodegraph.server import free_port_socket, make_server

from tests.server.plugin_source import write_plugin


def make_env(base: Path, builtin_registry) -> Environment:
    registry = Registry(specs=dict(builtin_registry.specs))
    write_plugin(base / "custom_nodes")
    registry.load_folder(base / "custom_nodes")
    assert not registry.problems, registry.problems
    for name in ("models", "output", "input", "temp"):
        (base / name).mkdir(parents=True, exist_ok=True)
    return Environment(registry=registry, folders=Folders(base))


class ServerThread:
    """uvicorn serving create_app(...) in a thread; `with ServerThread(...) as s:` starts and stops it."""

    def __init__(self, env, data_dir: Path, token: str | None = None, host: str = "127.0.0.1", **kw) -> None:
        kw.setdefault("in_process", True)  # a worker process per test costs seconds: tests/server/test_worker_process.py covers it
        self.sock = free_port_socket(host)
        self.port = self.sock.getsockname()[1]
        self.host = host
        self.token = token
        self.server = make_server(env, host, self.port, token, data_dir, log_level="warning", **kw)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def state(self):
        return self.server.config.app.state.nodegraph

    def start(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        assert not self.thread.is_alive(), "server did not stop"

    def client(self, **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.url, timeout=20, headers=headers, **kw)

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@pytest.fixture
def server_env(tmp_path, builtin_registry):
    return make_env(tmp_path / "base", builtin_registry)


@pytest.fixture
def server(server_env, tmp_path):
    with ServerThread(server_env, tmp_path / "data", ui_dir=tmp_path / "no-ui") as running:
        yield running


@pytest.fixture
def http(server):
    with server.client() as client:
        yield client
