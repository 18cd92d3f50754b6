"""Every workflow in workflows/ runs as shipped, the way the README tells a user to run it:
`nodegraph run workflows/X.json` (with `--input-dir workflows` for the ones that read a picture shipped
beside them, as the README says), in a fresh folder with nothing else prepared, and writes its outputs."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"
README = (ROOT / "README.md").read_text()


def shipped() -> list[str]:
    return sorted(p.name for p in WORKFLOWS.glob("*.json"))


def reads_shipped_pictures(doc: dict) -> bool:
    """A LoadImage of a file that lies in workflows/ (the README runs these with --input-dir workflows)."""
    return any(node.get("type") == "LoadImage" and (WORKFLOWS / str(node["inputs"].get("image", ""))).is_file()
               for node in doc["nodes"].values())


def command(name: str, output: Path) -> list[str]:
    script = Path(sys.executable).parent / "nodegraph"
    cli = [str(script)] if script.is_file() else [sys.executable, "-c", "from nodegraph.cli import main; main()"]
    args = ["run", str(WORKFLOWS / name), "--output-dir", str(output)]
    if reads_shipped_pictures(json.loads((WORKFLOWS / name).read_text())):
        args += ["--input-dir", str(WORKFLOWS)]
    return cli + args


def test_the_readme_says_which_workflows_need_the_input_dir():
    needing = [n for n in shipped() if reads_shipped_pictures(json.loads((WORKFLOWS / n).read_text()))]
    assert needing, "no shipped workflow reads a shipped picture any more: drop this check"
    assert "--input-dir workflows" in README
    for name in needing:  # the README names them ("The ControlNet ones ...")
        assert re.search(rf"workflows/{re.escape(name)}\b", README) or "ControlNet ones" in README, name


@pytest.mark.slow
@pytest.mark.parametrize("name", shipped())
def test_workflow_runs_as_shipped(name, tmp_path):
    doc = json.loads((WORKFLOWS / name).read_text())
    output = tmp_path / "output"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    done = subprocess.run(command(name, output), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "success" in done.stdout, done.stdout[-2000:]
    written = sorted(p.name for p in output.rglob("*.png")) if output.exists() else []
    for node_id, node in doc["nodes"].items():
        if node["type"] == "SaveImage":
            prefix = Path(node["inputs"].get("filename_prefix", "ComfyUI")).name
            assert any(f.startswith(prefix) for f in written), f"{name}: node {node_id} wrote no {prefix}*.png ({written})"
        if node["type"] == "PreviewImage":
            assert list((tmp_path / "temp").rglob("*.png")), f"{name}: node {node_id} previewed nothing"
        if node["type"] in ("ComputeFID", "ComputeKID", "PrecisionRecall"):
            assert re.search(rf"node {node_id}: (FID|KID|precision) -?\d", done.stdout), done.stdout[-2000:]
