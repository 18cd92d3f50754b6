"""Driving the editor like a person: drag from the palette, drag between sockets, type, press keys."""
from __future__ import annotations

import time

from playwright.sync_api import Page, expect


class Editor:
    def __init__(self, page: Page, server) -> None:
        self.page = page
        self.server = server

    # --- state -----------------------------------------------------------------------------------
    def wait_ready(self) -> None:
        self.page.wait_for_selector("[data-testid=canvas]", timeout=15000)
        self.page.wait_for_selector(".react-flow__pane", timeout=15000)
        self.page.wait_for_selector(".ng-conn.on", timeout=15000)  # the event socket is connected
        # the workflow tabs are restored (after the node schemas came): a document loaded before that is replaced
        self.page.wait_for_selector("[data-testid=workflow-tab]", timeout=15000)

    def graph(self) -> dict:
        """Node ids/types and links of the editor's graph."""
        return self.page.evaluate("""() => {
            const g = window.nodegraph.graph();
            return {
              nodes: g.nodes.map(n => ({id: n.id, kind: n.data.kind, type: n.data.nodeType ?? null,
                                        values: n.data.values ?? null, x: n.position.x, y: n.position.y})),
              edges: g.edges.map(e => ({source: e.source, sourceHandle: e.sourceHandle, target: e.target,
                                        targetHandle: e.targetHandle})),
            };
        }""")

    def workflow(self) -> dict:
        return self.page.evaluate("() => window.nodegraph.currentWorkflow()")

    def node(self, node_id: str):
        return self.page.locator(f"[data-testid='node-{node_id}']")

    def node_ids_of(self, type_name: str) -> list[str]:
        return [n["id"] for n in self.graph()["nodes"] if n["type"] == type_name]

    # --- gestures --------------------------------------------------------------------------------
    def canvas_box(self) -> dict:
        return self.page.locator("[data-testid=canvas]").bounding_box()

    def drag_from_palette(self, type_name: str, x: float, y: float) -> str:
        """Drag a palette entry onto the canvas, its corner at (x, y) relative to the canvas; returns the new node id."""
        before = set(self.node_ids_of(type_name))
        search = self.page.get_by_label("Filter nodes")
        search.fill(type_name)
        entry = self.page.locator(f"[data-testid='palette-{type_name}']")
        # a new node lands centred on the drop point: aim so that its corner lands at (x, y)
        size = self.page.evaluate("(t) => window.nodegraph.estimateNodeSize(t)", type_name)
        entry.drag_to(self.page.locator("[data-testid=canvas]"),
                      target_position={"x": x + size["width"] / 2, "y": y + size["height"] / 2})
        search.fill("")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            new = set(self.node_ids_of(type_name)) - before
            if new:
                node_id = new.pop()
                expect(self.node(node_id)).to_be_visible()
                return node_id
            time.sleep(0.05)
        raise AssertionError(f"dragging {type_name} from the palette added no node")

    def handle(self, node_id: str, handle_id: str):
        return self.page.locator(f".react-flow__handle[data-nodeid='{node_id}'][data-handleid='{handle_id}']")

    def _center(self, locator) -> tuple[float, float]:
        box = locator.bounding_box()
        assert box is not None, "handle not on screen"
        return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    def drag_link(self, src: str, output: str, dst: str, input_: str, *, hold=None) -> None:
        """Drag from an output socket to an input socket with the mouse. `hold(page)` runs while over the target."""
        self.node(dst).hover()  # widget sockets show on hover; harmless for the others
        sx, sy = self._center(self.handle(src, f"o:{output}"))
        tx, ty = self._center(self.handle(dst, f"i:{input_}"))
        m = self.page.mouse
        m.move(sx, sy)
        m.down()
        steps = 12
        for k in range(1, steps + 1):
            m.move(sx + (tx - sx) * k / steps, sy + (ty - sy) * k / steps)
        self.page.wait_for_timeout(60)
        if hold:
            hold(self.page)
        m.up()

    def set_widget(self, node_id: str, name: str, value) -> None:
        field = self.node(node_id).locator(f"[name='{name}']")
        field.click()
        field.fill(str(value))
        field.press("Enter")

    def open_example(self, name: str) -> None:
        self.page.click("[data-testid=menu-workflow]")
        self.page.click(f"[data-testid='example-{name}']")
        self.page.wait_for_function("() => window.nodegraph.graph().nodes.length > 0")
        self.page.wait_for_timeout(150)

    def press(self, keys: str) -> None:
        # leave any widget first, so shortcuts are not typed into it
        self.page.evaluate("() => document.activeElement && document.activeElement.blur()")
        self.page.keyboard.press(keys)

    def drop_file(self, name: str, data: bytes, mime: str) -> None:
        """Drop a file onto the canvas as a person dragging it from their desktop would."""
        self.page.evaluate(
            """([name, bytes, mime]) => {
                const file = new File([new Uint8Array(bytes)], name, {type: mime});
                const dt = new DataTransfer();
                dt.items.add(file);
                const pane = document.querySelector('.react-flow');
                const r = pane.getBoundingClientRect();
                const at = {clientX: r.left + r.width / 2, clientY: r.top + r.height / 2, bubbles: true, cancelable: true, dataTransfer: dt};
                pane.dispatchEvent(new DragEvent('dragover', at));
                pane.dispatchEvent(new DragEvent('drop', at));
            }""",
            [name, list(data), mime],
        )

    def screenshot(self, path) -> None:
        self.page.mouse.move(1, 1)  # no hover effects in the pictures
        self.page.wait_for_timeout(150)
        self.page.screenshot(path=str(path))

    def edge_point(self, index: int = 0) -> tuple[float, float]:
        """A point on a link's curve that is not hidden under a node (to click or right-click it)."""
        pt = self.page.evaluate(
            """(index) => {
                const edge = document.querySelectorAll('.react-flow__edge')[index];
                const path = edge.querySelector('.react-flow__edge-interaction') || edge.querySelector('path');
                const total = path.getTotalLength();
                for (const f of [0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8, 0.1, 0.9]) {
                  const p = path.getPointAtLength(total * f);
                  const m = path.getScreenCTM();
                  const x = m.a * p.x + m.c * p.y + m.e, y = m.b * p.x + m.d * p.y + m.f;
                  const hit = document.elementFromPoint(x, y);
                  if (hit && edge.contains(hit)) return [x, y];
                }
                return null;
            }""",
            index,
        )
        assert pt, "the link is hidden under nodes everywhere"
        return pt[0], pt[1]

    def set_any_widget(self, node_id: str, name: str, value) -> None:
        """Set a widget whatever its kind: choice, multiline text, toggle or number/text field."""
        field = self.node(node_id).locator(f"[name='{name}']")
        if field.count():
            tag = field.evaluate("(el) => el.tagName")
            if tag == "SELECT":
                field.select_option(str(value))
                return
            if tag == "TEXTAREA":
                field.fill(str(value))
                return
            self.set_widget(node_id, name, value)
            return
        toggle = self.node(node_id).get_by_role("switch", name=name)
        if toggle.get_attribute("aria-checked") != ("true" if value else "false"):
            toggle.click()

    def output_of_type(self, node_id: str, type_name: str) -> str:
        return self.page.evaluate(
            """([id, t]) => { const n = window.nodegraph.graph().nodes.find(n => n.id === id);
                 const s = window.nodegraph.editor.get().schemas[n.data.nodeType];
                 return s.outputs.find(o => o.type === t).name; }""", [node_id, type_name])
