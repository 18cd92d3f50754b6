import { describe, expect, it } from "vitest";
import { editorCanImport, fromComfyUI, toComfyUI, NATIVE_ID, UiDoc } from "../src/lib/comfyui";
import { apiToNative, nativeToApi, nextControlValue } from "../src/lib/comfy";
import { fromNative, isLink, toNative, NativeWorkflow } from "../src/lib/workflow";
import { copySelection, isNote, isOp, isReroute, paste } from "../src/lib/graph";
import { schemas, txt2imgApi } from "./fixtures";

/** The txt2img graph as the editor saves it, with a note, a reroute on the VAE link, a group, a
 *  randomized seed, a node whose id is not a number and a saved view. */
function richDoc(): NativeWorkflow {
  const doc = apiToNative(txt2imgApi);
  doc.nodes["decode"] = doc.nodes["8"];
  delete doc.nodes["8"];
  doc.nodes["9"].inputs.images = { node: "decode", output: "IMAGE" };
  Object.entries(doc.nodes).forEach(([, n], k) => (n.ui = { pos: [k * 300, 40] }));
  doc.nodes["3"].ui!.controls = { seed: "randomize" };
  doc.nodes["6"].title = "Positive";
  for (const n of Object.values(doc.nodes)) // outputs by name, as the editor writes them
    for (const [k, v] of Object.entries(n.inputs))
      if (isLink(v) && typeof v.output === "number") n.inputs[k] = { node: v.node, output: schemas[doc.nodes[v.node].type].outputs[Number(v.output)].name };
  doc.ui = {
    groups: [{ title: "Prompts", bounding: [0, 0, 700, 400], color: "#a1309b" }],
    notes: [{ id: "20", type: "MarkdownNote", pos: [10, 500], size: [300, 120], text: "# Read me\nseed *randomizes*" }],
    reroutes: [{ id: "21", pos: [900, 300] }],
    reroute_links: [
      { source: "4", output: "VAE", target: "21", input: "in" },
      { source: "21", output: "out", target: "decode", input: "vae" },
    ],
    viewport: { x: 100, y: -50, zoom: 0.5 },
  };
  return doc;
}

const withoutSizes = (doc: NativeWorkflow) => {
  const copy = structuredClone(doc);
  for (const n of Object.values(copy.nodes)) delete n.ui?.size;
  const links = copy.ui?.reroute_links as { target: string }[] | undefined;
  links?.sort((a, b) => a.target.localeCompare(b.target));
  return copy;
};

describe("ComfyUI UI-format export", () => {
  const ui = toComfyUI(richDoc(), schemas);
  const node = (type: string) => ui.nodes.find((n) => n.type === type)!;

  it("writes the document shape ComfyUI's frontend loads", () => {
    expect(ui.version).toBe(0.4);
    expect(Object.keys(ui)).toEqual(expect.arrayContaining(["last_node_id", "last_link_id", "nodes", "links", "groups", "config", "extra", "version"]));
    for (const n of ui.nodes)
      expect(Object.keys(n)).toEqual(expect.arrayContaining(["id", "type", "pos", "size", "flags", "order", "mode", "inputs", "outputs", "properties"]));
    expect(ui.nodes.every((n) => Number.isInteger(n.id))).toBe(true);
    expect(ui.last_node_id).toBe(Math.max(...ui.nodes.map((n) => n.id)));
    expect(ui.last_link_id).toBe(ui.links.length);
    // extra.ds: litegraph's offset is in graph units, React Flow's viewport in screen pixels
    expect(ui.extra.ds).toEqual({ scale: 0.5, offset: [200, -100] });
    expect(ui.groups).toEqual([{ id: 1, title: "Prompts", bounding: [0, 0, 700, 400], color: "#a1309b", font_size: 24, flags: {} }]);
  });

  it("writes widgets_values in ComfyUI's order, the seed's control value after the seed", () => {
    // ComfyUI's default graph: KSampler [seed, "randomize", steps, cfg, sampler_name, scheduler, denoise]
    expect(node("KSampler").widgets_values).toEqual([156680208700286, "randomize", 20, 8, "euler", "normal", 1]);
    expect(node("EmptyLatentImage").widgets_values).toEqual([512, 512, 1]);
    expect(node("KSampler").properties["Node name for S&R"]).toBe("KSampler");
    expect(node("KSampler").inputs.map((i) => i.name)).toEqual(["model", "positive", "negative", "latent_image"]);
    expect(node("CheckpointLoaderSimple").outputs.map((o) => [o.name, o.type, o.links!.length])).toEqual([
      ["MODEL", "MODEL", 1], ["CLIP", "CLIP", 2], ["VAE", "VAE", 1],
    ]);
  });

  it("writes links as [id, origin, slot, target, slot, type] that the nodes' slots name", () => {
    for (const [id, from, fromSlot, to, toSlot, type] of ui.links) {
      const src = ui.nodes.find((n) => n.id === from)!;
      const dst = ui.nodes.find((n) => n.id === to)!;
      expect(src.outputs[fromSlot].links).toContain(id);
      expect(dst.inputs[toSlot].link).toBe(id);
      expect(type).not.toBe("*");
    }
  });

  it("keeps notes, reroutes and ids that are not numbers", () => {
    const note = node("MarkdownNote");
    expect(note.widgets_values).toEqual(["# Read me\nseed *randomizes*"]);
    expect([note.color, note.bgcolor]).toEqual(["#432", "#653"]);
    const reroute = node("Reroute");
    expect(reroute.inputs).toHaveLength(1);
    expect(reroute.outputs[0].type).toBe("VAE"); // typed by what it carries
    const decode = node("VAEDecode");
    expect(decode.properties[NATIVE_ID]).toBe("decode");
    const vaeLink = ui.links.find((l) => l[0] === decode.inputs[1].link)!;
    expect(vaeLink[1]).toBe(reroute.id);
  });

  it("appends LoadImage's upload value, as ComfyUI writes it", () => {
    const doc: NativeWorkflow = { version: 1, nodes: { "1": { type: "LoadImage", inputs: { image: "cat.png" } } } };
    expect(toComfyUI(doc, schemas).nodes[0].widgets_values).toEqual(["cat.png", "image"]);
    expect(fromComfyUI(toComfyUI(doc, schemas) as unknown as Record<string, unknown>, schemas).nodes["1"].inputs).toEqual({ image: "cat.png" });
  });
});

describe("native → ComfyUI UI → native", () => {
  it("keeps the graph: nodes, links, values, controls, notes, reroutes, groups, titles and the view", () => {
    const doc = richDoc();
    const back = fromComfyUI(toComfyUI(doc, schemas) as unknown as Record<string, unknown>, schemas);
    expect(withoutSizes(back)).toEqual(withoutSizes(doc));
  });

  it("survives the editor in between (notes and reroutes are editor nodes, never run)", () => {
    const ui = toComfyUI(richDoc(), schemas) as unknown as Record<string, unknown>;
    expect(editorCanImport(ui, schemas)).toBe(true);
    const g = fromNative(fromComfyUI(ui, schemas), schemas);
    expect(g.nodes.filter(isNote)).toHaveLength(1);
    expect(g.nodes.filter(isReroute)).toHaveLength(1);
    expect(g.nodes.filter(isOp).find((n) => n.id === "3")!.data.controls).toEqual({ seed: "randomize" });
    const saved = toNative(g, schemas, { viewport: { x: 100, y: -50, zoom: 0.5 } });
    expect(withoutSizes(saved)).toEqual(withoutSizes(richDoc()));
    expect(toComfyUI(saved, schemas).nodes.map((n) => n.type).sort()).toEqual(toComfyUI(richDoc(), schemas).nodes.map((n) => n.type).sort());
  });
});

describe("ComfyUI UI-format import in the editor", () => {
  // the shape ComfyUI's frontend saves (its default graph, trimmed), with a Note and a Reroute
  const comfy: UiDoc = {
    last_node_id: 12, last_link_id: 4, version: 0.4, config: {}, groups: [], extra: { ds: { scale: 1, offset: [0, 0] } },
    nodes: [
      { id: 4, type: "CheckpointLoaderSimple", pos: [26, 474], size: [315, 98], flags: {}, order: 0, mode: 0, inputs: [],
        outputs: [{ name: "MODEL", type: "MODEL", links: [1], slot_index: 0 }, { name: "CLIP", type: "CLIP", links: null }, { name: "VAE", type: "VAE", links: [2], slot_index: 2 }],
        properties: { "Node name for S&R": "CheckpointLoaderSimple" }, widgets_values: ["tiny.safetensors"] },
      { id: 10, type: "Reroute", pos: [400, 600], size: [75, 26], flags: {}, order: 1, mode: 0, inputs: [{ name: "", type: "*", link: 2 }],
        outputs: [{ name: "", type: "VAE", links: [3] }], properties: { showOutputText: false, horizontal: false } },
      { id: 3, type: "KSampler", pos: [863, 186], size: [315, 262], flags: {}, order: 2, mode: 0,
        inputs: [{ name: "model", type: "MODEL", link: 1 }, { name: "positive", type: "CONDITIONING", link: null }, { name: "negative", type: "CONDITIONING", link: null }, { name: "latent_image", type: "LATENT", link: null }, { name: "seed", type: "INT", widget: { name: "seed" }, link: null }],
        outputs: [{ name: "LATENT", type: "LATENT", links: [4], slot_index: 0 }], properties: {}, widgets_values: [7, "increment", 20, 8, "euler", "normal", 1] },
      { id: 8, type: "VAEDecode", pos: [1209, 188], size: [210, 46], flags: {}, order: 3, mode: 0,
        inputs: [{ name: "samples", type: "LATENT", link: 4 }, { name: "vae", type: "VAE", link: 3 }], outputs: [{ name: "IMAGE", type: "IMAGE", links: null }], properties: {} },
      { id: 12, type: "Note", pos: [0, 0], size: [300, 100], flags: {}, order: 4, mode: 0, inputs: [], outputs: [], properties: { text: "" }, widgets_values: ["plain text"], color: "#432", bgcolor: "#653" },
    ],
    links: [[1, 4, 0, 3, 0, "MODEL"], [2, 4, 2, 10, 0, "*"], [3, 10, 0, 8, 1, "VAE"], [4, 3, 0, 8, 0, "LATENT"]],
  };
  const doc = comfy as unknown as Record<string, unknown>;

  it("keeps the control value, the note and the reroute instead of dropping them", () => {
    const native = fromComfyUI(doc, schemas);
    expect(native.nodes["3"].inputs).toMatchObject({ seed: 7, steps: 20, model: { node: "4", output: "MODEL" } });
    expect(native.nodes["3"].ui!.controls).toEqual({ seed: "increment" });
    expect(native.nodes["8"].inputs.vae).toEqual({ node: "4", output: "VAE" }); // what runs: through the reroute
    expect(native.ui!.notes).toEqual([{ id: "12", type: "Note", pos: [0, 0], size: [300, 100], text: "plain text" }]);
    expect(native.ui!.reroutes).toEqual([{ id: "10", pos: [400, 600] }]);
    const g = fromNative(native, schemas);
    const reroute = g.nodes.find(isReroute)!;
    expect(g.edges.filter((e) => e.source === reroute.id || e.target === reroute.id)).toHaveLength(2);
    expect(g.edges.some((e) => e.source === "4" && e.target === "8")).toBe(false); // drawn through the reroute
  });

  it("exports back to the same nodes, links and widget values", () => {
    const again = toComfyUI(fromComfyUI(doc, schemas), schemas);
    const shape = (u: UiDoc) => u.nodes.map((n) => [n.id, n.type, n.pos, n.size, n.widgets_values ?? null]).sort((a, b) => Number(a[0]) - Number(b[0]));
    expect(shape(again)).toEqual(shape(comfy));
    const ends = (u: UiDoc) => u.links.map(([, a, s, b, t]) => [a, s, b, t]).sort();
    expect(ends(again)).toEqual(ends(comfy));
  });

  it("leaves primitive nodes and modes other than always / never / bypass to the server's converter", () => {
    expect(editorCanImport(doc, schemas)).toBe(true);
    // an instance of a subgraph the document defines is known; of one it does not, is not
    const withInstance = { ...doc, nodes: [...comfy.nodes, { ...comfy.nodes[3], id: 20, type: "x" }] };
    expect(editorCanImport({ ...withInstance, definitions: { subgraphs: [{ id: "x" }] } }, schemas)).toBe(true);
    expect(editorCanImport(withInstance, schemas)).toBe(false);
    // bypassed (4) and muted (2) nodes the editor shows as such (tests/modes.test.ts); litegraph's
    // "on event" (1) and "on trigger" (3) it cannot
    const bypassed = structuredClone(comfy);
    bypassed.nodes[2].mode = 4;
    expect(editorCanImport(bypassed as unknown as Record<string, unknown>, schemas)).toBe(true);
    bypassed.nodes[2].mode = 3;
    expect(editorCanImport(bypassed as unknown as Record<string, unknown>, schemas)).toBe(false);
    const primitive = structuredClone(comfy);
    primitive.nodes[0].type = "PrimitiveNode";
    expect(editorCanImport(primitive as unknown as Record<string, unknown>, schemas)).toBe(false);
  });
});

describe("control_after_generate, as ComfyUI's frontend (computeNextNumberValue) moves a value after a queue", () => {
  const seed = { min: 0, max: 18446744073709551615, step: 1 };
  it("increments and decrements by the step, clamped to the widget's range", () => {
    expect(nextControlValue(7, "increment", seed)).toBe(8);
    expect(nextControlValue(7, "decrement", seed)).toBe(6);
    expect(nextControlValue(0, "decrement", seed)).toBe(0); // clamped, not wrapped
    expect(nextControlValue(10, "increment", { min: 0, max: 10 })).toBe(10);
    expect(nextControlValue(16, "increment", { min: 16, max: 4096, step: 8 })).toBe(24);
    expect(nextControlValue(5, "fixed", seed)).toBe(5);
  });
  it("randomizes within [min, min(max, 2^50)] in whole steps", () => {
    expect(nextControlValue(3, "randomize", seed, () => 0)).toBe(0);
    expect(nextControlValue(3, "randomize", seed, () => 0.999999)).toBeLessThanOrEqual(2 ** 50);
    expect(nextControlValue(3, "randomize", seed, () => 0.5)).toBe(2 ** 49);
    expect(nextControlValue(3, "randomize", { min: 16, max: 64, step: 8 }, () => 0.5)).toBe(40);
    for (let k = 0; k < 50; k++) {
      const v = nextControlValue(3, "randomize", { min: -5, max: 5 });
      expect(Number.isInteger(v) && v >= -5 && v <= 5).toBe(true);
    }
  });
});

describe("node types ComfyUI names otherwise (nodegraph/formats/comfy_names.json)", () => {
  const doc: NativeWorkflow = { version: 1, nodes: {
    "1": { type: "PrimitiveBoolean", inputs: { value: true } },
    "2": { type: "PrimitiveInt", inputs: { value: 3 } },
    "3": { type: "Switch", inputs: { switch: { node: "1", output: "BOOLEAN" }, on_true: { node: "2", output: "INT" } } },
  } };
  it("exports our Switch as ComfyUI's ComfySoftSwitchNode, in both formats, and reads it back", () => {
    const ui = toComfyUI(doc, schemas);
    const sw = ui.nodes.find((n) => n.id === 3)!;
    expect(sw.type).toBe("ComfySoftSwitchNode");
    expect(sw.properties["Node name for S&R"]).toBe("ComfySoftSwitchNode");
    const back = fromComfyUI(ui as unknown as Record<string, unknown>, schemas);
    expect(back.nodes["3"].type).toBe("Switch");
    expect(back.nodes["3"].inputs.on_true).toEqual({ node: "2", output: "INT" });
    const api = nativeToApi(doc, schemas);
    expect(api["3"].class_type).toBe("ComfySoftSwitchNode");
    expect(apiToNative({ "3": { class_type: "ComfySwitchNode", inputs: { switch: true } } }).nodes["3"].type).toBe("Switch");
  });
});

describe("notes in the editor graph", () => {
  it("copy and paste a note: a new note id, the text kept, saved in ui.notes", () => {
    const g = fromNative({ version: 1, nodes: {}, ui: { notes: [{ id: "n1", type: "Note", pos: [0, 0], size: [200, 90], text: "keep me" }] } }, schemas);
    const { graph, ids } = paste(g, copySelection(g, ["n1"]), { x: 50, y: 50 });
    expect(ids).toEqual(["n2"]);
    const saved = toNative(graph, schemas);
    expect((saved.ui!.notes as { id: string; text: string }[]).map((n) => [n.id, n.text])).toEqual([["n1", "keep me"], ["n2", "keep me"]]);
    expect(saved.nodes).toEqual({});
  });
});
