"""bench/vs_comfyui.py's report: one table row per scenario and engine (SD1.5 batches, SDXL, ControlNet),
ratios against ComfyUI of the same scenario, the cold round and the compile bookkeeping kept out of the
medians. Runs on the CPU with made-up rows (the GPU run itself needs ComfyUI and a GPU)."""
from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("vs_comfyui", ROOT / "bench" / "vs_comfyui.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(engine, scenario, batch, rnd, its):
    return {"engine": engine, "scenario": scenario, "batch": batch, "round": rnd, "its": its, "vae_ms": 20.0,
            "peak_gib": 3.0, "unet_dtype": "torch.float16", "psnr_vs_other_mode": None}


def test_report_has_a_row_per_scenario_with_ratios_against_comfyui_of_that_scenario(tmp_path, capsys):
    bench = _bench()
    rows = []
    for scenario, batch, comfy, fast in (("sd15", 1, 30.0, 90.0), ("sd15", 4, 30.0, 45.0), ("sdxl", 1, 10.0, 20.0),
                                         ("cn1", 1, 20.0, 60.0)):
        for rnd in range(3):
            rows += [_row("ComfyUI", scenario, batch, rnd, comfy if rnd else 1.0),
                     _row("nodegraph fast", scenario, batch, rnd, fast if rnd else 2.0),
                     _row("nodegraph eager", scenario, batch, rnd, comfy)]
    rows.append({"engine": "nodegraph fast", "compile": {}, "round": 0, "batch": "compile"})
    args = argparse.Namespace(steps=20, size=512, reps=2, batches=[1, 4], extra=["sdxl", "cn1"], comfy_args=[],
                              queue=0, out=str(tmp_path), tag="t")
    bench.report(args, rows)
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:]
    assert len(table) == 12
    by_what = {}
    for line in table:
        cells = [c.strip() for c in line.strip("|").split("|")]
        by_what[(cells[0], cells[1].split(" (")[0], cells[2])] = cells
    assert by_what[("SD1.5 512²", "nodegraph fast", "1")][6] == "3.00×"
    assert by_what[("SD1.5 512²", "nodegraph fast", "4")][6] == "1.50×"
    assert by_what[("SDXL 1024²", "nodegraph fast", "1")][6] == "2.00×"
    assert by_what[("SD1.5 + 1 ControlNet 512²", "nodegraph fast", "1")][6] == "3.00×"
    assert by_what[("SDXL 1024²", "nodegraph fast", "1")][9] == "2.00"  # the cold round, apart
    written = list(tmp_path.glob("vs_comfyui-*-t.md"))
    assert len(written) == 1 and json.loads(next(tmp_path.glob("*-t.json")).read_text()) == rows
