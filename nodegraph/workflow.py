"""The native workflow document: its schema (pydantic) and how a link is written. Nothing else.

    {
      "version": 1,
      "nodes": {
        "4": {"type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "nodegraph-default.safetensors"}},
        "6": {"type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": {"node": "4", "output": "CLIP"}}},
        "7": {"type": "LoraLoader", "inputs": {...}, "mode": "bypassed"}   # optional: "muted" or "bypassed"
      },
      "outputs": null,            # optional: the output nodes to run (default: every output node)
      "ui": {...}                 # optional: editor layout (positions, groups), kept as it is
    }

A link is an object {"node": id, "output": name or index}; anything else is a literal value.
Reading, writing and detecting documents of any format (this one, ComfyUI's API and UI formats,
PNGs made by nodegraph or ComfyUI) is nodegraph.formats' job; this module imports none of it.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FORMAT_VERSION = 1


class NodeEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(min_length=1)
    inputs: dict[str, Any] = Field(default_factory=dict)
    title: str | None = None
    # ComfyUI's node modes 2 ("never") and 4 ("bypass"): a muted node does not run; a bypassed one
    # hands its consumers an input of the matching type instead (nodegraph.modes resolves both)
    mode: Literal["muted", "bypassed"] | None = None
    ui: dict[str, Any] | None = None  # position, size, colour, collapsed/pinned in the editor


class Workflow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = FORMAT_VERSION
    nodes: dict[str, NodeEntry]
    outputs: list[str] | None = None
    ui: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None

    def to_json(self) -> dict:
        return self.model_dump(mode="json", exclude_none=True)


def is_link(value: Any) -> bool:
    return type(value) is dict and len(value) == 2 and "node" in value and "output" in value


def link(node: str, output: str | int) -> dict:
    return {"node": str(node), "output": output}
