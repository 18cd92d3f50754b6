"""Workflows embedded in PNG text chunks, readable by nodegraph and by ComfyUI.

We write "prompt" (ComfyUI API format, what ComfyUI itself writes), "workflow" when the job
came with a ComfyUI UI-format document, and "nodegraph" (our native document). On reading, the
native document is preferred, then the UI workflow, then the API prompt.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo


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
