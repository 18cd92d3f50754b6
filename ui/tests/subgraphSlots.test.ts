import { describe, expect, it } from "vitest";
import { apiToNative } from "../src/lib/comfy";
import { INPUT_NODE, OUTPUT_NODE, convertToSubgraph, withSlot, withoutSlot } from "../src/lib/subgraph";
import { NativeWorkflow, isLink } from "../src/lib/workflow";
import { schemas, txt2imgApi } from "./fixtures";

function txt2img(): NativeWorkflow {
  const doc = apiToNative(txt2imgApi);
  for (const n of Object.values(doc.nodes))
    for (const [k, v] of Object.entries(n.inputs))
      if (isLink(v) && typeof v.output === "number") n.inputs[k] = { node: v.node, output: schemas[doc.nodes[v.node].type].outputs[Number(v.output)].name };
  return doc;
}

// the two prompt encoders packed: input "clip", outputs CONDITIONING and CONDITIONING_2
const packed = () => convertToSubgraph(txt2img(), ["6", "7"], schemas, "Prompts");

describe("adding a subgraph input or output (a link dropped on the boundary's empty slot)", () => {
  it("appends a slot named after the inner socket, typed by it, numbered when the name is taken", () => {
    const { def } = packed();
    const a = withSlot(def, "input", "text", "STRING");
    expect(a.name).toBe("text");
    expect(a.def.inputs.map((i) => [i.name, i.type])).toEqual([["clip", "CLIP"], ["text", "STRING"]]);
    expect(a.def.inputs[1].linkIds).toEqual([]);
    expect(typeof a.def.inputs[1].id).toBe("string");
    const b = withSlot(a.def, "input", "clip", "CLIP");
    expect(b.name).toBe("clip_1");
    const c = withSlot(def, "output", "CONDITIONING", "CONDITIONING");
    expect(c.def.outputs.map((o) => o.name)).toEqual(["CONDITIONING", "CONDITIONING_2", "CONDITIONING_1"]);
    expect(def.inputs).toHaveLength(1); // the definition given is not changed
  });
});

describe("removing a subgraph input or output", () => {
  it("drops the input, its links inside and what fed it at the instances", () => {
    const { doc, def, instance } = packed();
    const { def: next, parent } = withoutSlot(def, "input", 0, doc);
    expect(next.inputs).toEqual([]);
    expect(next.links.some((l) => String(l.origin_id) === INPUT_NODE)).toBe(false);
    for (const n of next.nodes) for (const s of n.inputs ?? []) if (s.link != null) expect(next.links.some((l) => l.id === s.link)).toBe(true);
    expect(parent.nodes[instance].inputs.clip).toBeUndefined();
    expect(doc.nodes[instance].inputs.clip).toEqual({ node: "4", output: "CLIP" }); // the document given is not changed
  });

  it("drops an output and the links from it outside; later outputs move up a slot inside", () => {
    const { doc, def, instance } = packed();
    const { def: next, parent } = withoutSlot(def, "output", 0, doc);
    expect(next.outputs.map((o) => o.name)).toEqual(["CONDITIONING_2"]);
    const intoOutputs = next.links.filter((l) => String(l.target_id) === OUTPUT_NODE);
    expect(intoOutputs.map((l) => l.target_slot)).toEqual([0]);
    expect(parent.nodes["3"].inputs.positive).toBeUndefined();
    expect(parent.nodes["3"].inputs.negative).toEqual({ node: instance, output: "CONDITIONING_2" });
  });
});
