"""The V3 entry point: `comfy_entrypoint()` -> ComfyExtension -> `get_node_list()` -> io.ComfyNode classes.

ComfyUI awaits the entry point, `on_load()` and `get_node_list()` (each may be sync or async); the
node classes answer the V1 contract from their schema (comfy_api/io.py), so v1.adapt turns them into
NodeSpecs under their schema's node_id. A class whose schema cannot be read is reported on its own.
"""
from __future__ import annotations

import asyncio
import inspect

from .surface import explain_import_error


def _resolved(value):
    return asyncio.run(_await(value)) if inspect.isawaitable(value) else value


async def _await(awaitable):
    return await awaitable


def load_extension(registry, module, pack: str, source: str) -> int:
    from .comfy_api.io import ComfyNode
    from .v1 import adapt

    try:
        extension = _resolved(module.comfy_entrypoint())
        _resolved(extension.on_load())
        classes = list(_resolved(extension.get_node_list()) or [])
    except Exception as exc:
        registry.report(source, f"ComfyUI pack {pack}: comfy_entrypoint() failed: "
                                f"{explain_import_error(exc, pack) or f'{type(exc).__name__}: {exc}'}")
        return 0
    added = 0
    for cls in classes:
        label = getattr(cls, "__name__", repr(cls))
        try:
            if not (isinstance(cls, type) and issubclass(cls, ComfyNode)):
                raise TypeError(f"get_node_list() gave {cls!r}, not an io.ComfyNode class")
            schema = cls.GET_SCHEMA()
            label = schema.node_id
            adapted = adapt(str(schema.node_id), cls, pack, display_name=schema.display_name)
        except Exception as exc:
            registry.report(source, f"ComfyUI pack {pack}: node {label} skipped: "
                                    f"{explain_import_error(exc, pack) or f'{type(exc).__name__}: {exc}'}")
            continue
        if getattr(adapted, "__nodegraph_spec__", None) is None:
            registry.report(source, f"ComfyUI pack {pack}: node {label} skipped: {adapted.__nodegraph_error__}",
                            with_traceback=False)
            continue
        added += registry.add_class(adapted, source)
    return added
