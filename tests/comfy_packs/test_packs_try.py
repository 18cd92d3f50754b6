"""bench/comfy_packs_try.py, the tool that measured the README's public-pack table, on the test pack
public_like/public_surface: it loads the pack in its own process, runs each node it can feed and
reports per node."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_tool_runs_a_pack_and_reports_each_node(tmp_path):
    out = tmp_path / "report.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "comfy_packs_try.py"),
                           str(ROOT / "tests" / "comfy_packs" / "public_like"), "--only", "public_surface",
                           "--json", str(out), "--markdown"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, env={**os.environ})
    assert done.returncode == 0, done.stderr
    [report] = json.loads(out.read_text())
    nodes = report["nodes"]
    assert not report["import_failed"] and report["loaded"] == len(nodes)
    assert nodes["PublicResize"] == {"status": "ran"}  # fed the synthetic picture and its widget defaults
    assert nodes["PublicPreview"] == {"status": "ran"}
    assert nodes["PublicRequeue"]["status"] == "failed"
    assert nodes["PublicRequeue"]["why"].startswith("UnsupportedComfyFeature: pack 'public_surface' uses "
                                                    "server.PromptServer.instance.prompt_queue.put")
    assert nodes["PublicPassAny"] == {"status": "skipped", "why": "needs *"}
    assert "== public_surface" in done.stdout and "PublicRequeue" in done.stdout
    assert "| public_surface (?) |" in done.stdout  # the README row (no pyproject or COMMIT: no version)
