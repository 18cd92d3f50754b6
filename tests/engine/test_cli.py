"""The CLI as a user runs it: a real subprocess on real workflow files."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "nodegraph.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=240, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_run_example_workflow_writes_image(tmp_path):
    out = tmp_path / "out"
    proc = cli("run", str(ROOT / "workflows" / "image-basics.json"), "--output-dir", str(out),
               "--set", "1.color=65280", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "success" in proc.stdout and "wrote" in proc.stdout
    [png] = sorted(out.glob("*.png"))
    pixels = np.asarray(Image.open(png).convert("RGB"))
    assert tuple(pixels[0, 0]) == (255, 0, 255)  # green inverted is magenta


def test_validate_prints_every_problem_and_fails(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "nodes": {
        "1": {"type": "EmptyImage", "inputs": {"width": -5}},
        "2": {"type": "ImageInvert", "inputs": {"image": {"node": "9", "output": 0}}},
        "3": {"type": "SaveImage", "inputs": {"images": {"node": "2", "output": 0}}}}}))
    proc = cli("validate", str(bad), cwd=tmp_path)
    assert proc.returncode == 1
    assert "node 2 (ImageInvert) input 'image': links to node '9'" in proc.stdout
    proc = cli("run", str(bad), cwd=tmp_path)
    assert proc.returncode == 2 and "invalid" in proc.stderr


def test_nodes_json_lists_schemas(tmp_path):
    proc = cli("nodes", "--json", cwd=tmp_path)
    assert proc.returncode == 0
    schemas = json.loads(proc.stdout)
    assert schemas["SaveImage"]["output_node"] is True
    assert schemas["ImageScale"]["inputs"][1]["choices"][0] == "nearest-exact"


def test_failing_node_exit_code_and_message(tmp_path):
    wf = tmp_path / "div.json"
    wf.write_text(json.dumps({"version": 1, "nodes": {
        "1": {"type": "MathInt", "inputs": {"a": 1, "b": 0, "op": "floor_divide"}},
        "2": {"type": "PreviewAny", "inputs": {"source": {"node": "1", "output": "INT"}}}}}))
    proc = cli("run", str(wf), cwd=tmp_path)
    assert proc.returncode == 1
    assert "node 1 (MathInt)" in proc.stdout and "by zero" in proc.stdout
