import { describe, expect, it } from "vitest";
import { detectFormat, apiToNative, nativeToApi, unwrapApi, uiSummary } from "../src/lib/comfy";
import { fromNative, toRunnable } from "../src/lib/workflow";
import { schemas, imageBasics, txt2imgApi } from "./fixtures";

const uiDoc = {
  last_node_id: 2, last_link_id: 1,
  nodes: [
    { id: 1, type: "EmptyImage", pos: [0, 0], widgets_values: [64, 64, 1, 0], outputs: [{ name: "IMAGE", type: "IMAGE", links: [1] }] },
    { id: 2, type: "SaveImage", pos: [300, 0], inputs: [{ name: "images", type: "IMAGE", link: 1 }], widgets_values: ["x"] },
  ],
  links: [[1, 1, 0, 2, 0, "IMAGE"]],
  groups: [], version: 0.4,
};

describe("ComfyUI formats", () => {
  it("recognises each kind of document", () => {
    expect(detectFormat(imageBasics)).toBe("native");
    expect(detectFormat(txt2imgApi)).toBe("comfy_api");
    expect(detectFormat({ prompt: txt2imgApi, client_id: "x" })).toBe("comfy_api");
    expect(detectFormat(uiDoc)).toBe("comfy_ui");
    expect(detectFormat([1, 2])).toBeNull();
    expect(detectFormat({ hello: 1 })).toBeNull();
  });

  it("unwraps the body of ComfyUI's /prompt", () => {
    expect(unwrapApi({ prompt: txt2imgApi, client_id: "x" })).toBe(txt2imgApi);
    expect(unwrapApi(txt2imgApi as Record<string, unknown>)).toBe(txt2imgApi);
  });

  it("converts API links [id, index] to native links and back", () => {
    const native = apiToNative(txt2imgApi);
    expect(native.nodes["3"].inputs.model).toEqual({ node: "4", output: 0 });
    expect(native.nodes["3"].inputs.seed).toBe(156680208700286);
    const back = nativeToApi(toRunnable(fromNative(native, schemas), schemas), schemas);
    for (const [id, entry] of Object.entries(txt2imgApi)) {
      expect(back[id].class_type).toBe(entry.class_type);
      expect(back[id].inputs).toEqual(entry.inputs);
    }
  });

  it("exports named outputs as indexes and refuses unknown ones", () => {
    const api = nativeToApi(imageBasics, schemas);
    expect(api["2"].inputs.image).toEqual(["1", 0]);
    expect(api["1"]._meta!.title).toBe("Canvas");
    expect(() =>
      nativeToApi({ version: 1, nodes: { "1": { type: "EmptyImage", inputs: {} }, "2": { type: "SaveImage", inputs: { images: { node: "1", output: "NOPE" } } } } }, schemas),
    ).toThrow(/unknown output NOPE/);
  });

  it("summarises UI documents", () => {
    expect(uiSummary(uiDoc)).toEqual({ nodes: 2, links: 1, frontendOnly: 0 });
  });
});
