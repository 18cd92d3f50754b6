"""/object_info for a ComfyUI pack's node, as ComfyUI 0.8's server.py `node_info` writes it.

Read from the pack's own class, not from our NodeSpec, so every option the frontend honours reaches
it as declared (round, dynamicPrompts, defaultInput, placeholder, image_upload, hidden inputs ...):
- V1 classes: input = INPUT_TYPES(), input_order per section, output = RETURN_TYPES, output_is_list,
  output_name, name, display_name, description, python_module, category, output_node; and only when
  the class has them: output_tooltips, deprecated, experimental, api_node;
- V3 classes: every field of ComfyUI's NodeInfoV1 (Schema.get_v1_info), None where unset: hidden
  inputs as (kind,), output_name the output's display name or its type, output_tooltips and
  output_matchtypes, display_name None when the schema has none.
python_module is "custom_nodes.<pack>", what ComfyUI's loader sets as RELATIVE_PYTHON_MODULE.
"""
from __future__ import annotations

from typing import Any

from . import runtime


def pack_node_info(spec, env) -> dict[str, Any] | None:
    """ComfyUI's node_info for a pack node's spec; None for a node that is not a pack's."""
    cls = getattr(spec.cls, "comfy_class", None)
    if cls is None:
        return None
    module = getattr(cls, "RELATIVE_PYTHON_MODULE", None) or f"custom_nodes.{spec.cls.comfy_pack}"
    with runtime.using_env(env):
        from .comfy_api.io import ComfyNode

        if isinstance(cls, type) and issubclass(cls, ComfyNode):
            return _v3_info(cls, module)
        return _v1_info(cls, spec, module)


def _v1_info(cls, spec, module: str) -> dict:
    declared = cls.INPUT_TYPES()
    types = list(cls.RETURN_TYPES)
    info = {
        "input": declared,
        "input_order": {section: list(entries) for section, entries in declared.items()},
        "output": types,
        "output_is_list": list(getattr(cls, "OUTPUT_IS_LIST", None) or [False] * len(types)),
        "output_name": list(getattr(cls, "RETURN_NAMES", None) or types),
        "name": spec.name,
        "display_name": spec.display_name,
        "description": getattr(cls, "DESCRIPTION", ""),
        "python_module": module,
        "category": getattr(cls, "CATEGORY", "sd"),
        "output_node": getattr(cls, "OUTPUT_NODE", False) is True,
    }
    if hasattr(cls, "OUTPUT_TOOLTIPS"):
        info["output_tooltips"] = cls.OUTPUT_TOOLTIPS
    if getattr(cls, "DEPRECATED", False):
        info["deprecated"] = True
    if getattr(cls, "EXPERIMENTAL", False):
        info["experimental"] = True
    if hasattr(cls, "API_NODE"):
        info["api_node"] = cls.API_NODE
    return info


def _v3_info(cls, module: str) -> dict:
    schema = cls.GET_SCHEMA()
    declared = cls.INPUT_TYPES()
    outputs = schema.outputs
    return {
        "input": declared,
        "input_order": {section: list(entries) for section, entries in declared.items()},
        "output": [o.get_io_type() for o in outputs],
        "output_is_list": [bool(o.is_output_list) for o in outputs],
        "output_name": [o.display_name or o.get_io_type() for o in outputs],
        "output_tooltips": [o.tooltip or None for o in outputs],
        "output_matchtypes": _matchtypes(outputs),
        "name": schema.node_id,
        "display_name": schema.display_name,
        "description": schema.description,
        "python_module": module,
        "category": schema.category,
        "output_node": schema.is_output_node,
        "deprecated": schema.is_deprecated,
        "experimental": schema.is_experimental,
        "api_node": schema.is_api_node,
    }


def _matchtypes(outputs) -> list | None:
    """Each output's MatchType template id (None for the others); None when no output has one."""
    from .comfy_api.io import MatchType

    ids = [o.template.template_id if isinstance(o, MatchType.Output) else None for o in outputs]
    return ids if any(i is not None for i in ids) else None
