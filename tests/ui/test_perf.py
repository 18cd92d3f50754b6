"""The editor stays responsive with a 1,000-node graph: open to first frame, frame times while panning
(all nodes on screen, and zoomed in where off-screen nodes are not rendered), dragging one node,
Ctrl+A, dragging the whole 1,000-node selection, and click-to-select latency.

Issue 19's targets (headless Chromium): open ≤ 1.5 s; pan, drag one node and drag the selection at
p95 ≤ 33 ms per frame; Ctrl+A ≤ 100 ms. They are printed in a benchmark table (and written to
artifacts/perf.json) next to what was measured; the asserts are loose (2 shared CPU cores, software
rendering, other engineers' jobs) and catch breakage, not a few milliseconds.
"""
from __future__ import annotations

import json
import time

import pytest

ROWS, COLS = 25, 40  # 1,000 nodes: 25 chains of EmptyImage → 38 × ImageInvert → PreviewImage
N = ROWS * COLS
DX, DY = 260, 200  # close enough that all of it fits on screen at the minimum zoom (0.1)

TARGETS = {  # issue 19
    "open_to_first_frame_ms": 1500,
    "pan_fit_all_p95_ms": 33,
    "pan_zoom_100_p95_ms": 33,
    "drag_one_node_p95_ms": 33,
    "ctrl_a_ms": 100,
    "drag_selection_p95_ms": 33,
}


def big_workflow(rows: int = ROWS, cols: int = COLS) -> dict:
    nodes = {}
    for r in range(rows):
        for c in range(cols):
            nid = str(r * cols + c + 1)
            kind = "EmptyImage" if c == 0 else "PreviewImage" if c == cols - 1 else "ImageInvert"
            inputs = {"width": 64, "height": 64, "batch_size": 1, "color": r * 1000} if c == 0 else \
                {("images" if c == cols - 1 else "image"): {"node": str(r * cols + c), "output": "IMAGE"}}
            nodes[nid] = {"type": kind, "inputs": inputs, "ui": {"pos": [c * DX, r * DY]}}
    return {"version": 1, "nodes": nodes}


FRAME_PROBE = """() => {
    window.__frames = [];
    window.__probe = true;
    const tick = (t) => { if (!window.__probe) return; window.__frames.push(t); requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
}"""

FRAME_STATS = """() => {
    window.__probe = false;
    const f = window.__frames, d = [];
    for (let i = 1; i < f.length; i++) d.push(f[i] - f[i - 1]);
    d.sort((a, b) => a - b);
    const q = (p) => d[Math.min(d.length - 1, Math.floor(p * d.length))];
    const r = (x) => Math.round(x * 10) / 10;
    return {frames: d.length, p50_ms: r(q(0.5)), p95_ms: r(q(0.95)), max_ms: r(d[d.length - 1]),
            over_50ms: d.filter((x) => x > 50).length};
}"""

# open a document and wait for the frame that shows it fitted to the view with every node drawn
OPEN = """(doc) => new Promise((done) => {
    const t = performance.now();
    let first = null;
    window.nodegraph.loadDocument(doc, 'big');
    const want = Object.keys(doc.nodes).length;
    const wait = () => {
        const n = document.querySelectorAll('.react-flow__node').length;
        if (n > 0 && first === null) first = performance.now() - t;
        if (n >= want) requestAnimationFrame(() => done({first_nodes_ms: first, all_fitted_ms: performance.now() - t}));
        else if (performance.now() - t > 30000) done({first_nodes_ms: first, all_fitted_ms: 1e9, rendered: n});
        else requestAnimationFrame(wait);
    };
    requestAnimationFrame(wait);
})"""


def gesture(page, start, moves, dx, dy):
    """Press at `start`, move in small steps as a hand would, release; frame times meanwhile."""
    page.evaluate(FRAME_PROBE)
    x, y = start
    page.mouse.move(x, y)
    page.mouse.down()
    for k in range(1, moves + 1):
        page.mouse.move(x + dx * k, y + dy * k)
    page.mouse.up()
    page.wait_for_timeout(100)
    return page.evaluate(FRAME_STATS)


def header_inside(page, box, margin=140):
    """A node header well inside the canvas (clear of the minimap and controls)."""
    return page.evaluate("""([bx, by, bw, bh, m]) => {
        for (const h of document.querySelectorAll('.ng-node-header')) {
            const r = h.getBoundingClientRect();
            if (r.width > 4 && r.x > bx + m && r.y > by + m && r.x + r.width < bx + bw - m - 200 && r.y + r.height < by + bh - m)
                return {x: r.x + Math.min(10, r.width / 3), y: r.y + r.height / 2};
        }
        return null;
    }""", [box["x"], box["y"], box["width"], box["height"], margin])


def measure(editor) -> dict:
    page = editor.page
    page.click("[data-testid=toggle-panel]")  # more canvas, like a person working on a big graph
    page.get_by_label("Toggle palette").click()
    doc = big_workflow()
    t0 = time.perf_counter()
    opened = page.evaluate(OPEN, doc)
    wall_open = (time.perf_counter() - t0) * 1000
    page.wait_for_timeout(400)
    box = editor.canvas_box()
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    rendered_all = page.locator(".react-flow__node").count()
    zoom_fit = page.evaluate("() => window.nodegraph.__getViewport?.().zoom ?? null")

    # all 1,000 nodes on screen: pan on empty canvas below the graph's last row
    empty_y = box["y"] + box["height"] - 60
    pan_fit = gesture(page, (box["x"] + box["width"] - 260, empty_y), 40, -8, -3)
    gesture(page, (box["x"] + box["width"] - 580, empty_y - 120), 40, 8, 3)  # and back: all on screen again

    # drag one node at fit-all zoom
    hb = header_inside(page, box)
    assert hb, "no node header inside the canvas at fit-all zoom"
    drag_one = gesture(page, (hb["x"], hb["y"]), 40, 4, 3)

    # Ctrl+A: key down to the frame that shows every node selected
    page.locator(".react-flow__pane").click(position={"x": 5, "y": box["height"] - 10})
    ctrl_a_ms = page.evaluate("""(n) => new Promise((done) => {
        const t = performance.now();
        const obs = new MutationObserver(() => {
            if (document.querySelectorAll('.react-flow__node.selected').length >= n) {
                obs.disconnect();
                requestAnimationFrame(() => done(performance.now() - t));
            }
        });
        obs.observe(document.querySelector('.react-flow__nodes'), {subtree: true, attributes: true, attributeFilter: ['class']});
        setTimeout(() => { obs.disconnect(); done(1e9); }, 30000);
        window.dispatchEvent(new KeyboardEvent('keydown', {key: 'a', ctrlKey: true, bubbles: true}));
    })""", N)
    selected = page.locator(".react-flow__node.selected").count()

    # drag the whole selection by one of its nodes
    hb = header_inside(page, box)
    drag_all = gesture(page, (hb["x"], hb["y"]), 40, -4, -3)
    moved = page.evaluate("() => window.nodegraph.graph().nodes.filter(n => n.position.x % 260 !== 0).length")
    page.locator(".react-flow__pane").click(position={"x": 5, "y": box["height"] - 10})

    # zoomed in to 100 %: off-screen nodes are not rendered (virtualised)
    page.evaluate("() => window.nodegraph.__setViewport({x: 0, y: 0, zoom: 1})")
    page.wait_for_timeout(300)
    rendered_zoomed = page.locator(".react-flow__node").count()
    pan_zoom = gesture(page, (box["x"] + 200, box["y"] + 250), 60, 10, 6)

    # click-to-select latency on a few headers at 100 %
    page.evaluate("() => window.nodegraph.__setViewport({x: 40, y: 40, zoom: 1})")
    page.wait_for_timeout(300)
    latencies = []
    for k in range(6):
        hb = page.evaluate("""([k, bx, by, bw, bh]) => {
            const hs = [...document.querySelectorAll('.ng-node-header')].map(h => h.getBoundingClientRect())
                .filter(r => r.y > by + 10 && r.y + r.height < by + bh - 140 && r.x > bx + 10 && r.x + r.width < bx + bw - 200);
            const r = hs[k]; return r ? {x: r.x + 40, y: r.y + r.height / 2} : null;
        }""", [k, box["x"], box["y"], box["width"], box["height"]])
        if not hb:
            break
        page.evaluate("""() => {
            window.__down = 0; window.__lat = null;
            addEventListener('pointerdown', () => { window.__down = performance.now(); }, {capture: true, once: true});
            const obs = new MutationObserver(() => {
                if (document.querySelector('.react-flow__node.selected') && window.__down) {
                    requestAnimationFrame(() => { window.__lat = performance.now() - window.__down; });
                    obs.disconnect();
                }
            });
            obs.observe(document.querySelector('.react-flow__nodes'), {subtree: true, attributes: true, attributeFilter: ['class']});
        }""")
        page.mouse.click(hb["x"], hb["y"])
        page.wait_for_function("() => window.__lat !== null")
        latencies.append(page.evaluate("() => window.__lat"))
        page.locator(".react-flow__pane").click(position={"x": 3, "y": 3})
    latencies.sort()

    # an edit on one node re-renders that node, not the graph: a widget change to the next frame
    edit_ms = page.evaluate("""() => new Promise((done) => {
        const t = performance.now();
        const ed = window.nodegraph.editor, s = ed.get();
        ed.set({nodes: s.nodes.map(n => n.id === '1' ? {...n, data: {...n.data, values: {...n.data.values, width: 99}}} : n)});
        requestAnimationFrame(() => done(performance.now() - t));
    })""")

    return {
        "nodes": len(doc["nodes"]), "links": ROWS * (COLS - 1), "fit_zoom": zoom_fit,
        "open_to_first_frame_ms": round(opened["all_fitted_ms"], 1),
        "open_first_nodes_ms": round(opened["first_nodes_ms"], 1), "open_wall_ms": round(wall_open, 1),
        "rendered_nodes_fit_all": rendered_all, "rendered_nodes_zoom_100": rendered_zoomed,
        "pan_fit_all": pan_fit, "drag_one_node": drag_one,
        "ctrl_a_ms": round(ctrl_a_ms, 1), "selected_after_ctrl_a": selected,
        "drag_selection": drag_all, "moved_by_selection_drag": moved,
        "pan_zoom_100": pan_zoom,
        "select_click_latency_ms": {"p50": round(latencies[len(latencies) // 2], 1), "max": round(latencies[-1], 1)},
        "widget_edit_to_frame_ms": round(edit_ms, 1),
    }


def table(r: dict) -> str:
    rows = [
        ("open to first frame (fitted, all drawn)", r["open_to_first_frame_ms"], "open_to_first_frame_ms"),
        ("pan, all nodes on screen: p95 frame", r["pan_fit_all"]["p95_ms"], "pan_fit_all_p95_ms"),
        ("pan at 100 %: p95 frame", r["pan_zoom_100"]["p95_ms"], "pan_zoom_100_p95_ms"),
        ("drag one node (fit-all): p95 frame", r["drag_one_node"]["p95_ms"], "drag_one_node_p95_ms"),
        ("Ctrl+A to selected frame", r["ctrl_a_ms"], "ctrl_a_ms"),
        ("drag 1,000-node selection: p95 frame", r["drag_selection"]["p95_ms"], "drag_selection_p95_ms"),
    ]
    lines = [f"editor perf, {r['nodes']} nodes / {r['links']} links (headless Chromium, software rendering)",
             f"{'measure':42} {'ms':>8} {'target':>8}  ok"]
    for label, v, key in rows:
        lines.append(f"{label:42} {v:8.1f} {TARGETS[key]:8}  {'yes' if v <= TARGETS[key] else 'NO'}")
    return "\n".join(lines)


def test_1000_node_graph_stays_responsive(editor, artifacts):
    r = measure(editor)
    (artifacts / "perf.json").write_text(json.dumps({"result": r, "targets": TARGETS}, indent=2))
    print("\n" + table(r) + "\n" + json.dumps(r, indent=2))
    editor.screenshot(artifacts / "06-1000-nodes.png")

    assert r["rendered_nodes_fit_all"] == N
    assert r["rendered_nodes_zoom_100"] < 60, "off-screen nodes must not be rendered"
    assert r["selected_after_ctrl_a"] == N
    assert r["moved_by_selection_drag"] == N, "dragging the selection moves every node"
    for g in ("pan_fit_all", "pan_zoom_100", "drag_one_node", "drag_selection"):
        assert r[g]["frames"] >= 10, (g, r[g])
    # loose: this shared 2-core machine (load ~10 when measured) swings frame times 2x between runs, so these
    # bounds catch breakage (frames of seconds, a stuck open); the targets are judged in the printed table
    assert r["open_to_first_frame_ms"] < 6 * TARGETS["open_to_first_frame_ms"], r
    assert r["ctrl_a_ms"] < 10 * TARGETS["ctrl_a_ms"], r
    for g in ("pan_fit_all", "pan_zoom_100", "drag_one_node"):
        assert r[g]["p95_ms"] < 15 * 33, (g, r[g])
    assert r["drag_selection"]["p95_ms"] < 60 * 33, r["drag_selection"]
    assert r["select_click_latency_ms"]["p50"] < 150, r


@pytest.mark.parametrize("rows", [5, 8])  # 33 of 60 nodes: containers move, the rest held back; of 96: one by one
def test_layer_drag_moves_the_selection_only_and_undoes_in_one_step(editor, artifacts, rows):
    """A drag of 30+ nodes moves them as a layer (components/layerDrag.ts) and writes positions only at
    the drop: the selected rows move by the pointer's delta, the rest stay, the links touching both
    come back drawn (none left hidden or offset), and one Ctrl+Z puts every node back."""
    page = editor.page
    cols = 12  # chains of 12 nodes
    page.evaluate(OPEN, big_workflow(rows, cols))
    page.wait_for_timeout(400)
    before = page.evaluate("() => Object.fromEntries(window.nodegraph.graph().nodes.map(n => [n.id, [n.position.x, n.position.y]]))")
    # 3 chains without their last node: 33 nodes (30+: a layer drag), 3 links cut
    chosen = {str(r * cols + c + 1) for r in range(3) for c in range(cols - 1)}
    page.evaluate("""(ids) => { const ed = window.nodegraph.editor, s = ed.get(), want = new Set(ids);
        ed.set({nodes: s.nodes.map(n => ({...n, selected: want.has(n.id)}))}); }""", sorted(chosen))
    page.wait_for_timeout(200)
    start = editor.node("1").locator(".ng-node-header").bounding_box()
    x, y = start["x"] + 10, start["y"] + start["height"] / 2
    rects = """() => Object.fromEntries([...document.querySelectorAll('.react-flow__node')].map(e => [e.dataset.id, Math.round(e.getBoundingClientRect().x)]))"""
    drawn_before = page.evaluate(rects)
    page.mouse.move(x, y)
    page.mouse.down()
    for k in range(1, 11):
        page.mouse.move(x + 6 * k, y + 4 * k)
    drawn_mid = page.evaluate(rects)
    shifted = {i for i in drawn_before if i in drawn_mid and drawn_mid[i] != drawn_before[i]}
    mid = page.evaluate("""() => ({gesture: !!document.querySelector('.ng-canvas.ng-gesture'),
        stored: window.nodegraph.graph().nodes.find(n => n.id === '1').position.x,
        hidden: document.querySelectorAll('.ng-drag-hidden').length})""")
    page.screenshot(path=str(artifacts / f"07-layer-drag-mid-{rows}.png"))
    page.mouse.up()
    page.wait_for_timeout(200)
    after = page.evaluate("() => Object.fromEntries(window.nodegraph.graph().nodes.map(n => [n.id, [n.position.x, n.position.y]]))")
    left = page.evaluate("""() => ({offset: [...document.querySelectorAll('.react-flow__node, .react-flow__edges svg')].filter(e => e.style.translate).length,
        hidden: document.querySelectorAll('.ng-drag-hidden').length, edges: document.querySelectorAll('.react-flow__edge').length})""")
    editor.screenshot(artifacts / f"07-layer-drag-dropped-{rows}.png")

    # mid-drag: every drawn selected node has moved on screen and nothing else, while the store still
    # holds the start positions (written once, at the drop)
    assert shifted == {i for i in drawn_before if i in chosen} and shifted, (shifted, drawn_before)
    assert mid["stored"] == before["1"][0] and mid["gesture"], mid
    assert mid["hidden"] == 3, mid  # the links with one end dragged are hidden while dragging
    deltas = {(round(after[i][0] - before[i][0], 6), round(after[i][1] - before[i][1], 6)) for i in chosen}
    assert len(deltas) == 1 and deltas != {(0, 0)}, deltas  # all selected nodes moved by one delta
    assert all(after[i] == before[i] for i in before if i not in chosen)
    assert left == {"offset": 0, "hidden": 0, "edges": rows * (cols - 1)}, left
    editor.press("Control+z")
    page.wait_for_timeout(200)
    undone = page.evaluate("() => Object.fromEntries(window.nodegraph.graph().nodes.map(n => [n.id, [n.position.x, n.position.y]]))")
    assert undone == before
