"""Render every example workflow in workflows/ and collect what a user gets from it: the PNGs written to
the output and temp folders, and every number a node computed (FID, scores ...).

`python -m tests.golden.render` rewrites the fixtures in tests/golden/examples/ (only do that when a
change is *meant* to change pictures, and say so in the commit); test_examples.py renders again and
compares with them.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nodegraph.environment import Environment
from nodegraph.executor import Executor
from nodegraph.folders import Folders
from nodegraph.registry import default_registry

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
FIXTURES = Path(__file__).resolve().parent / "examples"


def example_names() -> list[str]:
    return sorted(p.name for p in WORKFLOWS.glob("*.json"))


def prepare_inputs(input_dir: Path) -> None:
    """What the examples read from the input folder: the pictures shipped beside them (evaluate-fid
    draws both of its image sets itself)."""
    for picture in WORKFLOWS.glob("*.png"):
        shutil.copy(picture, input_dir / picture.name)


def numbers(value) -> list[float] | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return [float(value)]
    return None


def render(name: str, base: Path, registry=None) -> dict:
    """Run one example in a fresh environment under `base`; returns {"images": {file: HxWxC uint8},
    "numbers": {"node.output": [..]}}."""
    for folder in ("models", "output", "input", "temp"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    prepare_inputs(base / "input")
    env = Environment(registry=registry or default_registry(plugins_dir=None), folders=Folders(base))
    torch.manual_seed(0)
    result = Executor(env).run(json.loads((WORKFLOWS / name).read_text()))
    if result.status != "success":
        raise RuntimeError(f"{name}: {result.status}: {result.errors}")
    images = {}
    for folder in ("output", "temp"):
        for png in sorted((base / folder).rglob("*.png")):
            images[f"{folder}/{png.relative_to(base / folder)}"] = np.asarray(Image.open(png).convert("RGB"))
    found = {}
    for node_id, outputs in sorted(result.values.items()):
        for k, items in enumerate(outputs):
            for item in items:
                value = numbers(item)
                if value is not None:
                    found.setdefault(f"{node_id}.{k}", []).extend(value)
    return {"images": images, "numbers": found}


def fixture_dir(name: str) -> Path:
    return FIXTURES / name.removesuffix(".json")


def write_fixtures(name: str, rendered: dict) -> None:
    out = fixture_dir(name)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    listing = {}
    for k, (file, pixels) in enumerate(sorted(rendered["images"].items())):
        Image.fromarray(pixels).save(out / f"{k:02d}.png")
        listing[f"{k:02d}.png"] = file
    (out / "expected.json").write_text(json.dumps({"images": listing, "numbers": rendered["numbers"]},
                                                  indent=1, sort_keys=True) + "\n")


def main(argv: list[str]) -> None:
    import tempfile
    torch.set_num_threads(1)  # as tests/conftest.py: the thread count changes float summation order
    names = argv or example_names()
    registry = default_registry(plugins_dir=None)
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            rendered = render(name, Path(tmp), registry)
        write_fixtures(name, rendered)
        print(f"{name}: {len(rendered['images'])} images, {len(rendered['numbers'])} numbers")


if __name__ == "__main__":
    main(sys.argv[1:])
