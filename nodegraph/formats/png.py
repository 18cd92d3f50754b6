"""Workflows embedded in PNG text chunks, readable by nodegraph and by ComfyUI.

We write what ComfyUI's SaveImage writes: "prompt" (the API-format prompt, the one the job was
submitted as, else our workflow converted) and then each entry of the job's `extra_pnginfo`
("workflow": the UI-format document that ComfyUI's frontend and our editor send with a job), as
tEXt chunks of json.dumps(value); then "nodegraph" (our native document). On reading, the native
document is preferred, then the UI workflow, then the API prompt.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo


def metadata_chunks(workflow: dict, extra: dict, registry) -> dict[str, Any]:
    """The text chunks a saved image carries, in ComfyUI's order, for a job's native `workflow`
    and `extra` data (metadata_text: what the front door the job came through asks every file to
    carry, e.g. the prompt ComfyUI's /prompt received; extra_pnginfo: ComfyUI's)."""
    given = dict(extra.get("metadata_text") or {})
    prompt = given.pop("prompt", None)
    if not isinstance(prompt, dict):
        prompt = _as_prompt(workflow, registry)
    chunks: dict[str, Any] = {} if prompt is None else {"prompt": prompt}
    chunks.update(given)
    pnginfo = extra.get("extra_pnginfo")
    if isinstance(pnginfo, dict):
        chunks.update(pnginfo)
    chunks["nodegraph"] = workflow
    return chunks


def _as_prompt(workflow: dict, registry) -> dict | None:
    """Our workflow as ComfyUI's API prompt; None when it cannot be written so (an output unknown to
    the registry): the file then carries no prompt, as a ComfyUI file saved without one."""
    from ..workflow import Workflow
    from . import comfy_api
    from .errors import WorkflowFormatError

    try:
        return comfy_api.from_native(Workflow.model_validate(workflow), registry)
    except (WorkflowFormatError, ValueError):
        return None


def png_info(chunks: dict[str, Any]) -> PngInfo:
    info = PngInfo()
    for key, value in chunks.items():
        if value is not None:
            info.add_text(key, value if isinstance(value, str) else json.dumps(value))
    return info


def read_png_workflow(path: str | Path) -> dict | None:
    with Image.open(path) as im:
        text = dict(getattr(im, "text", None) or im.info)
    for key in ("nodegraph", "workflow", "prompt"):
        raw = text.get(key)
        if isinstance(raw, str):
            try:
                return json.loads(raw)
            except json.JSONDecodeError:
                continue
    return None
