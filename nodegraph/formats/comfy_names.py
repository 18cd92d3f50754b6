"""Node types of ours that ComfyUI names otherwise (comfy_names.json, shared with the editor).

Our Switch is ComfyUI 0.8's ComfySoftSwitchNode (comfy_extras/nodes_logic.py: switch, on_false and
on_true, both optional and lazy; ComfySwitchNode is the same with both required), so exports write
ComfyUI's name and imports of either name make our node, unless the registry has that name itself
(a ComfyUI pack that brings it)."""
from __future__ import annotations

import json
from pathlib import Path

_TABLE = {k: v for k, v in json.loads((Path(__file__).with_name("comfy_names.json")).read_text()).items()
          if not k.startswith("_")}
EXPORT_NAMES: dict[str, str] = {ours: theirs[0] for ours, theirs in _TABLE.items()}
IMPORT_NAMES: dict[str, str] = {name: ours for ours, theirs in _TABLE.items() for name in theirs}


def comfy_name(kind: str) -> str:
    """The class_type ComfyUI knows our node type by."""
    return EXPORT_NAMES.get(kind, kind)


def native_name(kind, registry) -> str:
    """Our node type for a ComfyUI class_type (the registry's own node of that name wins)."""
    if not isinstance(kind, str) or kind not in IMPORT_NAMES:
        return kind
    if registry is not None and registry.get(kind) is not None:
        return kind
    return IMPORT_NAMES[kind]
