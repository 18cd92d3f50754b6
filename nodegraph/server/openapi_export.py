"""The native API's OpenAPI document, without starting a server: its /v1 routes, the schemas they
use, and the websocket events' schemas. The editor's build turns it into TypeScript types
(ui/scripts/gen-types.mjs).

    python -m nodegraph.server.openapi_export [OUT.json]     # stdout without OUT
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from tempfile import TemporaryDirectory

from .app import PREFIX, create_app
from .schemas import extra_component_schemas

REF = "#/components/schemas/"


def native_openapi() -> dict:
    from ..environment import Environment
    from ..folders import Folders
    from ..registry import Registry

    with TemporaryDirectory(prefix="nodegraph-openapi-") as tmp:
        # the document depends on the routes only, not on the nodes or folders: an empty registry will do
        app = create_app(Environment(registry=Registry(), folders=Folders(tmp)), data_dir=tmp, ui_dir=tmp,
                         workflows_dir=tmp)
        try:
            doc = app.openapi()
        finally:
            app.state.nodegraph.store.close()
    paths = {path: item for path, item in doc["paths"].items() if path.startswith(PREFIX + "/")}
    schemas = doc.get("components", {}).get("schemas", {})
    extra = list(extra_component_schemas())
    wanted = _reachable(schemas, extra, [paths, *(schemas[name] for name in extra)])
    return {**doc, "paths": paths,
            "components": {**doc.get("components", {}), "schemas": {k: schemas[k] for k in sorted(wanted)}}}


def _reachable(schemas: dict, names: list[str], roots: list) -> set[str]:
    """`names` and the component schemas referenced from `roots`, directly or through each other."""
    seen = set(names)
    stack = list(roots)
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith(REF) and ref[len(REF):] not in seen:
                seen.add(ref[len(REF):])
                stack.append(schemas[ref[len(REF):]])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return seen


def main(argv: list[str]) -> int:
    text = json.dumps(native_openapi(), indent=1, sort_keys=True) + "\n"
    if argv:
        Path(argv[0]).parent.mkdir(parents=True, exist_ok=True)
        Path(argv[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
