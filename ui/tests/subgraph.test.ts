import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { apiToNative } from "../src/lib/comfy";
import { editorCanImport, fromComfyUI, toComfyUI } from "../src/lib/comfyui";
import {
  INPUT_NODE, OUTPUT_NODE, SubgraphDef, boundarySchemas, convertToSubgraph, definitionToNative, definitionsOf, nativeToDefinition,
  subgraphSchemas, unpackSubgraph,
} from "../src/lib/subgraph";
import { NativeWorkflow, fromNative, toNative, isLink } from "../src/lib/workflow";
import { schemas, txt2imgApi } from "./fixtures";

const here = dirname(fileURLToPath(import.meta.url));
/** A ComfyUI file with nested subgraphs and promoted widget values (tests/comfy_workflows, run by the engine's corpus test). */
const nested = JSON.parse(readFileSync(join(here, "..", "..", "tests", "comfy_workflows", "ui_subgraphs_nested.json"), "utf-8"));

function txt2img(): NativeWorkflow {
  const doc = apiToNative(txt2imgApi);
  for (const n of Object.values(doc.nodes))
    for (const [k, v] of Object.entries(n.inputs))
      if (isLink(v) && typeof v.output === "number") n.inputs[k] = { node: v.node, output: schemas[doc.nodes[v.node].type].outputs[v.output].name };
  Object.values(doc.nodes).forEach((n, k) => (n.ui = { pos: [k * 300, (k % 2) * 200] }));
  return doc;
}

describe("convert a selection to a subgraph", () => {
  const { doc, def, instance } = convertToSubgraph(txt2img(), ["6", "7"], schemas, "Prompts");

  it("turns links that cross the boundary into the subgraph's inputs and outputs", () => {
    expect(def.inputs.map((i) => [i.name, i.type])).toEqual([["clip", "CLIP"]]); // one outside output: one input
    expect(def.outputs.map((o) => [o.name, o.type])).toEqual([["CONDITIONING", "CONDITIONING"], ["CONDITIONING_2", "CONDITIONING"]]);
    expect(doc.nodes["6"]).toBeUndefined();
    expect(doc.nodes[instance]).toMatchObject({ type: def.id, inputs: { clip: { node: "4", output: "CLIP" } } });
    expect(doc.nodes["3"].inputs.positive).toEqual({ node: instance, output: "CONDITIONING" });
    expect(doc.nodes["3"].inputs.negative).toEqual({ node: instance, output: "CONDITIONING_2" });
  });

  it("writes the definition in ComfyUI's shape (virtual nodes -10 / -20, links as objects, linkIds)", () => {
    expect(Object.keys(def)).toEqual(expect.arrayContaining(["id", "version", "state", "revision", "config", "name", "inputNode", "outputNode", "inputs", "outputs", "widgets", "nodes", "groups", "links", "extra"]));
    expect(def.inputNode).toMatchObject({ id: -10 });
    expect(def.outputNode).toMatchObject({ id: -20 });
    expect(def.nodes.map((n) => n.type)).toEqual(["CLIPTextEncode", "CLIPTextEncode"]);
    const fromInput = def.links.filter((l) => l.origin_id === -10);
    expect(fromInput.map((l) => [l.origin_slot, l.target_slot])).toEqual([[0, 0], [0, 0]]); // clip: the socket inputs come first, as ComfyUI lists them
    expect(def.inputs[0].linkIds).toEqual(fromInput.map((l) => l.id));
    const toOutput = def.links.filter((l) => l.target_id === -20);
    expect(toOutput.map((l) => l.target_slot)).toEqual([0, 1]);
    for (const l of def.links) {
      if (l.target_id > 0) expect(def.nodes.find((n) => n.id === l.target_id)!.inputs[l.target_slot].link).toBe(l.id);
      if (l.origin_id > 0) expect(def.nodes.find((n) => n.id === l.origin_id)!.outputs[l.origin_slot].links).toContain(l.id);
    }
  });

  it("exports definitions.subgraphs with the instance typed by the definition's id", () => {
    const ui = toComfyUI(doc, schemas);
    expect(ui.definitions!.subgraphs).toEqual([def]);
    const inst = ui.nodes.find((n) => n.type === def.id)!;
    expect(inst.inputs.map((i) => i.name)).toEqual(["clip"]);
    expect(inst.outputs.map((o) => [o.name, o.links!.length])).toEqual([["CONDITIONING", 1], ["CONDITIONING_2", 1]]);
    // and comes back as it went
    const back = fromComfyUI(ui as unknown as Record<string, unknown>, schemas);
    expect(definitionsOf(back)).toEqual([def]);
    expect(back.nodes[instance].inputs).toEqual(doc.nodes[instance].inputs);
  });

  it("unpacks back to the same graph", () => {
    const flat = unpackSubgraph(doc, instance, schemas);
    expect(definitionsOf(flat)).toEqual([]);
    const types = Object.values(flat.nodes).map((n) => n.type).sort();
    expect(types).toEqual(Object.values(txt2img().nodes).map((n) => n.type).sort());
    const pos = flat.nodes["3"].inputs.positive as { node: string };
    const neg = flat.nodes["3"].inputs.negative as { node: string };
    expect(flat.nodes[pos.node].inputs).toEqual({ text: "a red circle", clip: { node: "4", output: "CLIP" } });
    expect(flat.nodes[neg.node].inputs).toEqual({ text: "blurry", clip: { node: "4", output: "CLIP" } });
  });

  it("unpacks a chain whose first node takes the instance's id, wired as before", () => {
    const chain: NativeWorkflow = JSON.parse(readFileSync(join(here, "..", "..", "workflows", "image-basics.json"), "utf-8"));
    const packed = convertToSubgraph(chain, ["2", "3"], schemas);
    expect(packed.instance).toBe("5");
    const flat = unpackSubgraph(packed.doc, packed.instance, schemas);
    expect(flat.nodes["5"]).toMatchObject({ type: "ImageInvert", inputs: { image: { node: "1", output: "IMAGE" } } });
    expect(flat.nodes["6"]).toMatchObject({ type: "ImageScaleBy", inputs: { image: { node: "5", output: "IMAGE" }, scale_by: 0.5 } });
    expect(flat.nodes["4"].inputs.images).toEqual({ node: "6", output: "IMAGE" });
  });

  it("edits a level as a native document and writes it back unchanged", () => {
    const all = { ...schemas, ...subgraphSchemas([def]) };
    const level = definitionToNative(def, all);
    expect(level.nodes[INPUT_NODE].type).toBe("SubgraphInputs");
    expect(Object.values(level.nodes).filter((n) => isLink(n.inputs.clip)).map((n) => n.inputs.clip)).toEqual([
      { node: INPUT_NODE, output: "clip" }, { node: INPUT_NODE, output: "clip" },
    ]);
    expect(Object.keys(level.nodes[OUTPUT_NODE].inputs)).toEqual(["CONDITIONING", "CONDITIONING_2"]);
    // through the editor's graph and back
    const withBoundary = { ...all, ...boundarySchemas(def) };
    const edited = toNative(fromNative(level, withBoundary), withBoundary);
    expect(nativeToDefinition(edited, def, withBoundary)).toEqual(def);
  });
});

describe("a ComfyUI file with nested subgraphs", () => {
  it("opens in the editor with its subgraphs and saves back unchanged in shape", () => {
    expect(editorCanImport(nested, schemas)).toBe(true);
    const native = fromComfyUI(nested, schemas);
    expect(definitionsOf(native).map((d) => d.name)).toEqual(nested.definitions.subgraphs.map((d: SubgraphDef) => d.name));
    // promoted widgets: the instance's values by subgraph input name; the control value only where the file had one
    expect(native.nodes["10"].inputs).toMatchObject({ seed: 42, text: "a red circle on a blue background" });
    expect(native.nodes["10"].ui!.controls).toBeUndefined();
    expect(native.nodes["11"].inputs).toMatchObject({ seed: 7, text: "a yellow square on a green background" });
    expect(native.nodes["11"].ui!.controls).toEqual({ seed: "fixed" });
    const again = toComfyUI(native, schemas);
    expect(again.definitions).toEqual(nested.definitions);
    const shape = (nodes: { id: number; type: string; widgets_values?: unknown }[]) => nodes.map((n) => [n.id, n.type, n.widgets_values ?? null]);
    expect(shape(again.nodes)).toEqual(shape(nested.nodes));
    const ends = (links: unknown[][]) => links.map((l) => l.slice(1, 5).join(",")).sort();
    expect(ends(again.links)).toEqual(ends(nested.links));
  });

  it("writes every definition back exactly as it came after a trip through the editor", () => {
    const defs = nested.definitions.subgraphs as SubgraphDef[];
    for (const def of defs) {
      const all = { ...schemas, ...subgraphSchemas(defs, schemas), ...boundarySchemas(def) };
      const edited = toNative(fromNative(definitionToNative(def, all), all), all);
      expect(nativeToDefinition(edited, def, all)).toEqual(def); // link ids, localized names, boundary sizes
    }
  });

  it("enters a definition that holds another, and writes it back the same", () => {
    const defs = nested.definitions.subgraphs as SubgraphDef[];
    const outer = defs.find((d) => d.name === "Generate")!;
    const all = { ...schemas, ...subgraphSchemas(defs, schemas), ...boundarySchemas(outer) };
    const level = definitionToNative(outer, all);
    const inner = Object.values(level.nodes).find((n) => n.type === defs.find((d) => d.name === "Prompt")!.id)!;
    expect(inner.inputs.clip).toEqual({ node: INPUT_NODE, output: "clip" });
    const back = nativeToDefinition(toNative(fromNative(level, all), all), outer, all);
    expect(back.links.map((l) => [l.origin_id, l.origin_slot, l.target_id, l.target_slot]).sort()).toEqual(
      outer.links.map((l) => [l.origin_id, l.origin_slot, l.target_id, l.target_slot]).sort());
    // node widgets as they were; the nested instance, whose promoted text is linked, writes that widget's
    // kept value where the file had an empty list (ComfyUI reads either the same way)
    const plain = (nodes: SubgraphDef["nodes"]) => nodes.map((n) => [n.id, n.type, n.type in schemas ? n.widgets_values ?? null : "-"]);
    expect(plain(back.nodes)).toEqual(plain(outer.nodes));
  });
});
