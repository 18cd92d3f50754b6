"""Browser tests of the editor: Debian's headless Chromium, driven by Playwright, against a real
`nodegraph serve` (python -m nodegraph.server) on a free loopback port.

They skip, saying why, only when Chromium (or the playwright package) is missing; a missing
editor build (ui/dist) is a failure with the command that builds it. Screenshots and the perf
numbers go to tests/ui/artifacts/ (git-ignored); the path is printed at the end of the run.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "ui" / "dist"
PLUGINS = Path(__file__).resolve().parent / "plugins"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = os.environ.get("NODEGRAPH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}


def _skip_reason() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install playwright; no browser download needed)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _skip_reason()
    for item in items:
        if "tests/ui" not in str(item.fspath).replace(os.sep, "/"):
            continue
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))
        elif config.pluginmanager.hasplugin("rerunfailures"):
            # one retry: a browser test that fails twice in a row fails; one that races the editor's
            # frame timing on a loaded machine once does not sink the run (the retry is reported)
            item.add_marker(pytest.mark.flaky(reruns=1))


def pytest_terminal_summary(terminalreporter):
    if ARTIFACTS.exists() and any(ARTIFACTS.iterdir()):
        terminalreporter.write_line(f"editor screenshots and perf numbers: {ARTIFACTS}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _plugins_folder(base: Path) -> Path:
    """The server's plugins: the editor tests' own nodes, plus the repo's Stable Diffusion pack when
    it is not registered as an entry point yet (so txt2img is tested as soon as the pack exists)."""
    from importlib.metadata import entry_points

    folder = base / "custom_nodes"
    folder.mkdir()
    (folder / "ui_test_nodes.py").symlink_to(PLUGINS / "ui_test_nodes.py")
    registered = any(ep.value.startswith("nodes.diffusion") for ep in entry_points(group="nodegraph.nodes"))
    pack = REPO / "nodes" / "diffusion"
    if not registered and (pack / "__init__.py").is_file():
        (folder / "diffusion").symlink_to(pack, target_is_directory=True)
    return folder


class Server:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        for name in ("models", "output", "input", "temp"):
            (base / name).mkdir(parents=True, exist_ok=True)
        repo_models = REPO / "models"
        if repo_models.is_dir():  # the shipped default checkpoint, where there is one
            shutil.rmtree(base / "models")
            (base / "models").symlink_to(repo_models, target_is_directory=True)
        self.log = open(base / "server.log", "w")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nodegraph.server", "--port", str(self.port), "--base", str(base),
             "--data-dir", str(base), "--plugins", str(_plugins_folder(base))],
            cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.get("/v1/status")
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the server did not start:\n{(base / 'server.log').read_text()}")
                time.sleep(0.2)

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            data = r.read()
            return json.loads(data) if r.headers.get_content_type() == "application/json" else data

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


@pytest.fixture(scope="session")
def server():
    if not (DIST / "index.html").is_file():
        pytest.fail(f"the editor is not built ({DIST} is missing): run `cd ui && npm ci && npm run build`")
    base = Path(tempfile.mkdtemp(prefix="nodegraph-ui-"))
    s = Server(base)
    yield s
    s.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def browser_context():
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="nodegraph-chromium-")
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, viewport=VIEWPORT,
            accept_downloads=True)
        yield ctx
        ctx.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def editor(server, browser_context):
    """A fresh editor page (empty local storage) with console errors collected."""
    from tests.ui.helpers import Editor

    page = browser_context.new_page()
    page.set_default_timeout(10000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("console", lambda m: m.type == "error" and errors.append(f"console: {m.text}"))
    # clear storage from a same-origin page that is not the editor (whose unload handler would autosave)
    page.goto(server.url + "/v1/status")
    page.evaluate("() => { localStorage.clear(); sessionStorage.clear(); }")
    page.goto(server.url + "/")
    ed = Editor(page, server)
    ed.wait_ready()
    yield ed
    page.close()
    # a failed image load (404) logs a console error; anything else is a bug in the editor
    real = [e for e in errors if "Failed to load resource" not in e]
    assert not real, "\n".join(real)
