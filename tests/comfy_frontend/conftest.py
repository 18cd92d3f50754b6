"""ComfyUI's official frontend (the comfyui-frontend-package wheel, a `test` extra) driving
`nodegraph serve --frontend comfy`, in Debian's headless Chromium through Playwright.

Every backend request the page makes is logged; `bad_requests()` lists the 4xx/5xx ones except
those ComfyUI itself answers with on a fresh install (ALLOWED, each with its reason).
Screenshots go to the test's tmp dir (printed at the end of the run)."""
from __future__ import annotations

import os
import re
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
CHROMIUM = os.environ.get("NODEGRAPH_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
# (method, path regex, status, why ComfyUI answers the same on a fresh install)
ALLOWED = [
    ("GET", r"/(api/userdata/)?user\.css", 404, "no user stylesheet yet (user_manager: file missing)"),
    ("GET", r"/api/userdata\?dir=(workflows|subgraphs)&.*", 404, "user folder not created until something is saved"),
    ("GET", r"/api/userdata/comfy\.templates\.json", 404, "no saved templates file yet"),
    ("GET", r"/api/userdata/workflows%2F\.index\.json", 404, "the workflows sidebar's order file, written later"),
    ("GET", r"/templates/index_logo\.json", 404, "no comfyui-workflow-templates package: /templates is not served"),
    ("GET", r"/api/workflow_templates/[^/]+/[^/]+\.(jpg|webp|png)", 404, "custom template packs without thumbnails"),
]


def _skip_reason() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    for module, hint in (("playwright", "pip install playwright"),
                         ("comfyui_frontend_package", "pip install 'nodegraph[test]' (comfyui-frontend-package)")):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed ({hint})"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _skip_reason()
    for item in items:
        if "tests/comfy_frontend" in str(item.fspath).replace(os.sep, "/") and reason:
            item.add_marker(pytest.mark.skip(reason=reason))


class ComfyServer:
    def __init__(self, base: Path) -> None:
        self.base = base
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        for name in ("models", "output", "input", "temp", "custom_nodes"):
            (base / name).mkdir(parents=True, exist_ok=True)
        self.log = open(base / "server.log", "w")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nodegraph.server", "--port", str(self.port), "--base", str(base), "--data-dir",
             str(base), "--plugins", str(base / "custom_nodes"), "--frontend", "comfy", "--log-level", "info"],
            cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url + "/api/system_stats", timeout=5).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError((base / "server.log").read_text())
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def comfy_server():
    base = Path(tempfile.mkdtemp(prefix="nodegraph-comfy-frontend-"))
    server = ComfyServer(base)
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


class Page:
    """A browser page on the server, with every backend response logged."""

    def __init__(self, page, server: ComfyServer) -> None:
        self.page = page
        self.server = server
        self.responses: list[tuple[str, str, int]] = []
        page.on("response", self._log)

    def _log(self, response) -> None:
        url = response.url
        if url.startswith(self.server.url):
            self.responses.append((response.request.method, url[len(self.server.url):], response.status))

    def bad_requests(self) -> list[tuple[str, str, int]]:
        return [(m, p, s) for m, p, s in self.responses if s >= 400
                and not any(m == am and re.fullmatch(ap, p) and s == st for am, ap, st, _ in ALLOWED)]

    def open(self) -> None:
        self.page.goto(self.server.url + "/")
        self.page.wait_for_function("() => window.app && window.app.graph && window.app.canvas", timeout=90000)
        self.page.wait_for_timeout(1500)  # first-run dialogs open after the app
        self.page.keyboard.press("Escape")

    def nodes(self) -> list:
        return self.page.evaluate("() => window.app.graph.nodes.map(n => [String(n.id), n.type])")

    def set_widget(self, node_type: str, name: str, value) -> None:
        self.page.evaluate("""([type, name, value]) => { for (const n of window.app.graph.nodes) if (n.type === type) {
            const w = n.widgets.find(w => w.name === name); w.value = value; w.callback?.(value); } }""",
                           [node_type, name, value])


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def context(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    yield ctx
    ctx.close()


@pytest.fixture
def comfy_page(context, comfy_server):
    page = context.new_page()
    page.set_default_timeout(20000)
    yield Page(page, comfy_server)
    page.close()
