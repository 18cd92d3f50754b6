import { describe, expect, it } from "vitest";
import { fromNative, toNative, toRunnable, NativeWorkflow } from "../src/lib/workflow";
import { layoutSize, overlaps } from "../src/lib/layout";
import { connect, newReroute, newGroup, REROUTE_IN, REROUTE_OUT, integrityProblems, isOp, OpData, GNode } from "../src/lib/graph";
import { apiToNative } from "../src/lib/comfy";
import { schemas, imageBasics, txt2imgApi } from "./fixtures";

const strip = (doc: NativeWorkflow) => toRunnable(fromNative(doc, schemas), schemas);

describe("native workflow JSON", () => {
  it("round-trips the example workflow without changing what runs", () => {
    const g = fromNative(imageBasics, schemas);
    expect(g.nodes.filter(isOp)).toHaveLength(4);
    expect(g.edges).toHaveLength(3);
    expect(integrityProblems(g, schemas)).toEqual([]);
    expect(toRunnable(g, schemas)).toEqual(imageBasics);
  });

  it("keeps positions, titles, groups and seed controls across save and load", () => {
    const g = fromNative(imageBasics, schemas);
    g.nodes[0].position = { x: 12, y: 34 };
    g.nodes.push(newGroup("g1", "Inputs", -10, -40, 400, 300, "#335"));
    const saved = toNative(g, schemas);
    expect(saved.nodes["1"].ui!.pos).toEqual([12, 34]);
    expect(saved.nodes["1"].title).toBe("Canvas");
    expect(saved.ui!.groups).toEqual([{ title: "Inputs", bounding: [-10, -40, 400, 300], color: "#335" }]);
    const again = fromNative(JSON.parse(JSON.stringify(saved)), schemas);
    expect(toNative(again, schemas)).toEqual(saved);
  });

  it("writes widget values, links by output name, and leaves out non-widget literals", () => {
    const doc = strip(apiToNative(txt2imgApi));
    expect(doc.nodes["3"].inputs.model).toEqual({ node: "4", output: "MODEL" });
    expect(doc.nodes["6"].inputs.clip).toEqual({ node: "4", output: "CLIP" });
    expect(doc.nodes["8"].inputs.vae).toEqual({ node: "4", output: "VAE" });
    expect(doc.nodes["3"].inputs.seed).toBe(156680208700286);
  });

  it("lays out nodes that come without positions, left to right by depth, without overlaps", () => {
    const g = fromNative(apiToNative(txt2imgApi), schemas);
    expect(g.laidOut).toBe(true);
    expect(g.unplaced!.sort()).toEqual(["3", "4", "5", "6", "7", "8", "9"]);
    const at = (id: string) => g.nodes.find((n) => n.id === id)!.position;
    // depth 0: loader, latent | 1: prompts | 2: sampler | 3: decode | 4: save
    expect(at("5").x).toBe(at("4").x); // a source, like the loader
    expect(at("4").x).toBeLessThan(at("6").x);
    expect(at("6").x).toBe(at("7").x);
    expect(at("6").x).toBeLessThan(at("3").x);
    expect(at("3").x).toBeLessThan(at("8").x);
    expect(at("8").x).toBeLessThan(at("9").x);
    const boxes = g.nodes.map((n) => ({ id: n.id, ...n.position, ...layoutSize(n, schemas) }));
    expect(overlaps(boxes)).toEqual([]);
  });

  it("resolves reroutes to direct links for the server and keeps them for the editor", () => {
    const g = fromNative(imageBasics, schemas);
    g.nodes.push(newReroute("r1", { x: 100, y: 200 }), newReroute("r2", { x: 150, y: 200 }));
    g.edges = connect(g.edges, { source: "1", sourceHandle: "o:IMAGE", target: "r1", targetHandle: REROUTE_IN });
    g.edges = connect(g.edges, { source: "r1", sourceHandle: REROUTE_OUT, target: "r2", targetHandle: REROUTE_IN });
    g.edges = connect(g.edges, { source: "r2", sourceHandle: REROUTE_OUT, target: "2", targetHandle: "i:image" });
    const run = toRunnable(g, schemas);
    expect(run.nodes["2"].inputs.image).toEqual({ node: "1", output: "IMAGE" });
    expect(Object.keys(run.nodes)).toEqual(["1", "2", "3", "4"]);
    const saved = toNative(g, schemas);
    const back = fromNative(JSON.parse(JSON.stringify(saved)), schemas);
    expect(integrityProblems(back, schemas)).toEqual([]);
    expect(back.edges.find((e) => e.target === "2")!.source).toBe("r2");
    expect(back.edges.some((e) => e.source === "1" && e.target === "2")).toBe(false);
    expect(toNative(back, schemas)).toEqual(saved);
  });

  it("drops a reroute input that leads nowhere, so validation reports the missing input", () => {
    const g = fromNative(imageBasics, schemas);
    g.nodes.push(newReroute("r1", { x: 0, y: 0 }));
    g.edges = connect(g.edges, { source: "r1", sourceHandle: REROUTE_OUT, target: "2", targetHandle: "i:image" });
    expect(toRunnable(g, schemas).nodes["2"].inputs.image).toBeUndefined();
  });

  it("keeps the widget value under a link, and restores it when the link goes", () => {
    const doc: NativeWorkflow = {
      version: 1,
      nodes: {
        "1": { type: "PrimitiveInt", inputs: { value: 64 } },
        "2": { type: "EmptyImage", inputs: { width: { node: "1", output: "INT" }, height: 32, batch_size: 1, color: 0 } },
      },
    };
    const g = fromNative(doc, schemas);
    const empty = g.nodes.find((n) => n.id === "2") as GNode<OpData>;
    expect(empty.data.values.width).toBe(512); // the default, since the link supplies the value
    empty.data.values.width = 100;
    const saved = toNative(g, schemas);
    expect(saved.nodes["2"].inputs.width).toEqual({ node: "1", output: "INT" });
    expect(saved.nodes["2"].ui!.linked_values).toEqual({ width: 100 });
    const back = fromNative(saved, schemas);
    expect((back.nodes.find((n) => n.id === "2") as GNode<OpData>).data.values.width).toBe(100);
  });

  it("omits a widget converted to a socket with nothing plugged in", () => {
    const g = fromNative(imageBasics, schemas);
    const canvas = g.nodes.find((n) => n.id === "1") as GNode<OpData>;
    canvas.data.converted = ["width"];
    const doc = toNative(g, schemas);
    expect("width" in doc.nodes["1"].inputs).toBe(false);
    expect(doc.nodes["1"].ui!.converted).toEqual(["width"]);
    expect((fromNative(doc, schemas).nodes[0].data as OpData).converted).toEqual(["width"]);
  });

  it("keeps unknown node types and their links intact", () => {
    const doc: NativeWorkflow = {
      version: 1,
      nodes: {
        "1": { type: "SomePluginNode", inputs: { strength: 0.5, mode: "fast" } },
        "2": { type: "SaveImage", inputs: { images: { node: "1", output: 0 }, filename_prefix: "x" } },
        "3": { type: "SaveImage", inputs: { images: { node: "1", output: "OTHER" }, filename_prefix: "y" } },
      },
    };
    const g = fromNative(doc, schemas);
    expect(integrityProblems(g, schemas)).toEqual([]);
    expect(toRunnable(g, schemas)).toEqual(doc);
  });

  it("maps output indexes to names through the schemas", () => {
    const doc: NativeWorkflow = {
      version: 1,
      nodes: {
        "1": { type: "LoadImage", inputs: { image: "a.png" } },
        "2": { type: "MaskToImage", inputs: { mask: { node: "1", output: 1 } } },
      },
    };
    expect(strip(doc).nodes["2"].inputs.mask).toEqual({ node: "1", output: "MASK" });
  });
});
