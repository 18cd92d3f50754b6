// Node modes (bypass / mute), collapse, pin, colour and size through the native format and ComfyUI's
// UI format: what the editor saves, what it queues (toRunnable keeps `mode`: the server resolves it),
// and the litegraph fields (mode 2 never, 4 bypass; flags; color/bgcolor) as ComfyUI's frontend writes them.
import { describe, expect, it } from "vitest";
import { fromNative, toNative, toRunnable, NativeWorkflow } from "../src/lib/workflow";
import { isOp } from "../src/lib/graph";
import { COMFY_MODE, comfyLookOf, nativeLookOf } from "../src/lib/comfyLook";
import { schemas, imageBasics } from "./fixtures";

const withLooks = (): NativeWorkflow => {
  const doc = JSON.parse(JSON.stringify(imageBasics)) as NativeWorkflow;
  const [a, b, c] = Object.keys(doc.nodes);
  doc.nodes[a].mode = "muted";
  doc.nodes[a].ui = { ...doc.nodes[a].ui, collapsed: true, color: "#322", bgcolor: "#533" };
  doc.nodes[b].mode = "bypassed";
  doc.nodes[b].ui = { ...doc.nodes[b].ui, pinned: true, size: [320, 180] };
  doc.nodes[c].ui = { ...doc.nodes[c].ui, color: "#223", bgcolor: "#335" };
  return doc;
};

describe("node modes and looks in the native format", () => {
  it("load into the editor's node data and save back unchanged", () => {
    const doc = withLooks();
    const g = fromNative(doc, schemas);
    const [a, b, c] = Object.keys(doc.nodes).map((id) => g.nodes.find((n) => n.id === id)!);
    expect(isOp(a) && a.data).toMatchObject({ mode: "muted", collapsed: true, color: "#322", bgcolor: "#533" });
    expect(isOp(b) && b.data).toMatchObject({ mode: "bypassed", pinned: true });
    expect(b.draggable).toBe(false); // pinned: React Flow will not move it
    expect([b.width, b.height]).toEqual([320, 180]);
    expect(isOp(c) && c.data.uiExtra).toBeUndefined(); // colours are node data, not leftovers
    const saved = toNative(g, schemas); // the example has no positions: the layout adds them
    for (const id of Object.keys(doc.nodes)) {
      expect(saved.nodes[id].mode).toBe(doc.nodes[id].mode);
      expect(saved.nodes[id].ui).toEqual({ ...doc.nodes[id].ui, pos: saved.nodes[id].ui!.pos });
    }
    expect(toNative(fromNative(JSON.parse(JSON.stringify(saved)), schemas), schemas)).toEqual(saved);
  });

  it("what is queued keeps the modes (the server resolves them) and drops the looks", () => {
    const doc = withLooks();
    const run = toRunnable(fromNative(doc, schemas), schemas);
    const [a, b, c] = Object.keys(doc.nodes);
    expect(run.nodes[a].mode).toBe("muted");
    expect(run.nodes[b].mode).toBe("bypassed");
    expect(run.nodes[c].mode).toBeUndefined();
    for (const n of Object.values(run.nodes)) expect(n.ui).toBeUndefined();
  });

  it("a node without any writes no mode and no look fields", () => {
    const saved = toNative(fromNative(imageBasics, schemas), schemas);
    for (const n of Object.values(saved.nodes)) {
      expect(n.mode).toBeUndefined();
      expect(Object.keys(n.ui ?? {}).filter((k) => ["collapsed", "pinned", "color", "bgcolor", "size"].includes(k))).toEqual([]);
    }
  });
});

describe("node modes and looks in ComfyUI's UI format", () => {
  it("map to litegraph's mode numbers, flags and colours, and back", () => {
    const doc = withLooks();
    const [a, b, c] = Object.keys(doc.nodes);
    // litegraph: LGraphEventMode ALWAYS 0, NEVER 2, BYPASS 4
    expect(comfyLookOf(doc.nodes[a])).toEqual({ mode: 2, flags: { collapsed: true }, color: "#322", bgcolor: "#533" });
    expect(comfyLookOf(doc.nodes[b])).toEqual({ mode: 4, flags: { pinned: true } });
    expect(comfyLookOf(doc.nodes[c])).toEqual({ mode: 0, flags: {}, color: "#223", bgcolor: "#335" });
    for (const id of [a, b, c]) {
      const back = nativeLookOf(comfyLookOf(doc.nodes[id]));
      expect(back.mode).toBe(doc.nodes[id].mode);
      const { pos: _pos, size: _size, ...look } = doc.nodes[id].ui!;
      expect(back.ui).toEqual(look);
    }
  });

  it("a ComfyUI node saved by its frontend reads as ours", () => {
    // the shape ComfyUI's frontend saves (a bypassed, collapsed, purple KSampler)
    const node = { id: 3, type: "KSampler", mode: COMFY_MODE.bypassed, flags: { collapsed: true }, color: "#323", bgcolor: "#535" };
    expect(nativeLookOf(node)).toEqual({ mode: "bypassed", ui: { collapsed: true, color: "#323", bgcolor: "#535" } });
    expect(nativeLookOf({ mode: 0, flags: {} })).toEqual({ ui: {} });
  });
});

describe("node modes and looks through the editor's ComfyUI UI export and import (lib/comfyui.ts)", () => {
  it("native → ComfyUI UI → native keeps modes, flags and colours", async () => {
    const { toComfyUI, fromComfyUI, editorCanImport } = await import("../src/lib/comfyui");
    const doc = withLooks();
    const ui = toComfyUI(doc, schemas);
    const [a, b, c] = Object.keys(doc.nodes);
    const byId = (id: string) => ui.nodes.find((n) => String(n.id) === id)!;
    expect([byId(a).mode, byId(b).mode, byId(c).mode]).toEqual([2, 4, 0]);
    expect(byId(a).flags).toEqual({ collapsed: true });
    expect(byId(b).flags).toEqual({ pinned: true });
    expect([byId(a).color, byId(a).bgcolor]).toEqual(["#322", "#533"]);
    expect(editorCanImport(ui as unknown as Record<string, unknown>, schemas)).toBe(true);
    const back = fromComfyUI(JSON.parse(JSON.stringify(ui)), schemas);
    for (const id of [a, b, c]) {
      expect(back.nodes[id].mode).toBe(doc.nodes[id].mode);
      for (const k of ["collapsed", "pinned", "color", "bgcolor"]) expect(back.nodes[id].ui?.[k]).toEqual(doc.nodes[id].ui?.[k]);
      expect(back.nodes[id].ui?.flags).toBeUndefined();
    }
  });
});
