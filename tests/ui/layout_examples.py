"""Give the shipped examples (workflows/*.json) their positions: each is opened in the editor
(headless Chromium, a real server) without positions, laid out by the editor's own layout
(ui/src/lib/layout.ts, with the sizes the nodes really have once drawn), and the positions are
written back as each node's "ui": {"pos": [x, y]}. Run once after an example changes:

    python -m tests.ui.layout_examples [NAME ...]

tests/ui/test_examples.py checks, in the browser, that no two nodes of any example overlap.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, REPO, VIEWPORT, Server

WORKFLOWS = REPO / "workflows"

# open a document with its positions stripped and wait for the second, measured layout pass
LAY_OUT = """(doc) => new Promise((done) => {
    const ed = window.nodegraph.editor, before = ed.get().loadCount;
    window.nodegraph.loadDocument(doc, 'layout');
    const t = performance.now();
    const wait = () => {
        if (ed.get().loadCount >= before + 2 || performance.now() - t > 8000)
            done(window.nodegraph.graph().nodes.map(n => ({id: n.id, x: n.position.x, y: n.position.y})));
        else setTimeout(wait, 50);
    };
    wait();
})"""


def without_positions(doc: dict) -> dict:
    doc = json.loads(json.dumps(doc))
    for node in doc["nodes"].values():
        (node.get("ui") or {}).pop("pos", None)
    doc.pop("ui", None)
    return doc


def dump(doc: dict) -> str:
    """The examples' hand-kept shape: one line per node."""
    lines = ["{"]
    keys = list(doc)
    for k, key in enumerate(keys):
        comma = "," if k < len(keys) - 1 else ""
        if key == "nodes":
            lines.append('  "nodes": {')
            ids = list(doc["nodes"])
            for j, nid in enumerate(ids):
                lines.append(f"    {json.dumps(nid)}: {json.dumps(doc['nodes'][nid], ensure_ascii=False)}"
                             + ("," if j < len(ids) - 1 else ""))
            lines.append("  }" + comma)
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(doc[key], ensure_ascii=False)}{comma}")
    return "\n".join(lines + ["}"]) + "\n"


def main(names: list[str]) -> None:
    from playwright.sync_api import sync_playwright

    from tests.ui.helpers import Editor

    base = Path(tempfile.mkdtemp(prefix="nodegraph-layout-"))
    server = Server(base)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(server.url + "/")
            Editor(page, server).wait_ready()
            for name in names or sorted(p.stem for p in WORKFLOWS.glob("*.json")):
                path = WORKFLOWS / f"{name}.json"
                doc = json.loads(path.read_text())
                placed = {n["id"]: n for n in page.evaluate(LAY_OUT, without_positions(doc))}
                for nid, node in doc["nodes"].items():
                    ui = {k: v for k, v in (node.get("ui") or {}).items() if k != "pos"}
                    node["ui"] = {"pos": [round(placed[nid]["x"]), round(placed[nid]["y"])], **ui}
                path.write_text(dump(doc))
                print(f"{name}: {len(doc['nodes'])} nodes placed")
            browser.close()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
