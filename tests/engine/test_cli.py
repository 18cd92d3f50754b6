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


def test_bad_input_files_get_one_line_with_file_and_position_never_a_traceback(tmp_path):
    """Issue 18: a 5000-digit integer (ValueError in json), 100k-deep nesting (RecursionError),
    broken JSON, bytes that are not UTF-8 and a document that is not a workflow."""
    cases = {
        "digits.json": ('{"version": 1, "nodes": {"1": {"type": "PrimitiveInt", "inputs": {"value": ' + "9" * 5000
                        + "}}}}", "digits.json:1:76: a number of 5,000 digits"),
        "deep.json": ("[" * 100_000 + "]" * 100_000, "deep.json:1:100000: nested 100,000 levels deep"),
        "broken.json": ('{"version": 1,\n "nodes": {"1": }}', "broken.json:2:17: not valid JSON"),
        "latin1.json": (b'{"a": "\xe9"}', "latin1.json: byte 7: not UTF-8 text"),
        "shape.json": ('{"version": 1, "nodes": {"1": {"type": 5}}}', "nodes.1.type"),
    }
    for k, (name, (content, expected)) in enumerate(cases.items()):
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        for command in (("run", "validate") if k < 2 else ("run" if k % 2 else "validate",)):  # one loader
            proc = cli(command, str(path), cwd=tmp_path)
            lines = proc.stderr.strip().splitlines()
            assert proc.returncode != 0 and "Traceback" not in proc.stderr, (name, command, proc.stderr[-500:])
            assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], (name, lines)
    proc = cli("run", str(tmp_path / "missing.json"), cwd=tmp_path)
    assert proc.returncode != 0 and "missing.json" in proc.stderr and "Traceback" not in proc.stderr
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps({"version": 1, "nodes": {"1": {"type": "PrimitiveInt", "inputs": {"value": 1}},
                                                      "2": {"type": "PreviewAny", "inputs": {"source": {"node": "1", "output": 0}}}}}))
    proc = cli("run", str(wf), "--set", "1.value=" + "9" * 5000, cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and "--set" in proc.stderr


def test_limits_are_flags_of_run_and_validate_with_clear_errors(tmp_path):
    big = tmp_path / "big.json"
    nodes = {str(k): {"type": "PrimitiveInt", "inputs": {"value": k}} for k in range(30)}
    nodes["p"] = {"type": "PreviewAny", "inputs": {"source": {"node": "1", "output": 0}}}
    big.write_text(json.dumps({"version": 1, "nodes": nodes}))
    proc = cli("validate", str(big), "--max-nodes", "20", cwd=tmp_path)
    assert proc.returncode != 0 and "31 nodes, more than the limit of 20 (--max-nodes)" in proc.stderr
    proc = cli("run", str(big), "--max-submission-bytes", "100", cwd=tmp_path)
    assert proc.returncode != 0 and "more than the limit of 100 (--max-submission-bytes)" in proc.stderr
    proc = cli("run", str(big), "--max-nodes", "lots", cwd=tmp_path)
    assert proc.returncode == 2 and "not a count: 'lots'" in proc.stderr

    power = tmp_path / "power.json"  # 3 ** (3·10⁷) held the interpreter for 10 s
    power.write_text(json.dumps({"version": 1, "nodes": {
        "1": {"type": "MathInt", "inputs": {"a": 3, "b": 30_000_000, "op": "power"}},
        "2": {"type": "PreviewAny", "inputs": {"source": {"node": "1", "output": "INT"}}}}}))
    proc = cli("run", str(power), cwd=tmp_path)
    assert proc.returncode == 1 and "node 1 (MathInt)" in proc.stdout
    assert "more than the limit of 4,096 (--max-int-bits)" in proc.stdout
    proc = cli("run", str(power), "--set", "1.b=100", "--max-int-bits", "100", cwd=tmp_path)
    assert proc.returncode == 1 and "limit of 100 (--max-int-bits)" in proc.stdout
    proc = cli("run", str(power), "--set", "1.b=100", "--max-int-bits", "200", cwd=tmp_path)
    assert proc.returncode == 0 and str(3**100) in proc.stdout
