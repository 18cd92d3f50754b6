"""The example workflows' own input files: a picture shipped next to an example (workflows/
controlnet-shape.png for the ControlNet examples) is copied into the input folder when the example
is opened, so that it validates and runs as shipped, without an upload.

An example's input files are the files in the examples folder that one of its nodes names as a plain
string input value (a LoadImage's `image`); nothing is listed by hand, so a new example with its
picture next to it works the same way.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ..workflow import Workflow


def example_inputs(workflow: Workflow, folder: Path) -> list[Path]:
    """Files in `folder` that the workflow's inputs name (file names only: no paths, no links)."""
    found: dict[str, Path] = {}
    for node in workflow.nodes.values():
        for value in node.inputs.values():
            if not isinstance(value, str) or not value or value in found:
                continue
            if Path(value).name != value or value.startswith(".") or value.endswith(".json"):
                continue  # a plain file name next to the example, never a path out of the folder
            path = folder / value
            if path.is_file():
                found[value] = path
    return list(found.values())


def provide_inputs(workflow: Workflow, folder: Path, input_dir: Path) -> list[str]:
    """Copy the example's input files into the input folder; a file of that name already there is the
    user's and is kept. Returns the names the example reads from the input folder."""
    names = []
    for src in example_inputs(workflow, folder):
        dest = input_dir / src.name
        if not dest.exists():
            input_dir.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.part")
            shutil.copyfile(src, tmp)
            tmp.replace(dest)  # atomic: a listing of the input folder never sees half a picture
        names.append(src.name)
    return names
