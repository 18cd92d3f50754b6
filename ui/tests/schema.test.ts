import { describe, expect, it } from "vitest";
import { typesCompatible, checkValue, categoryTree, searchNodes, typeColor, defaultValue, isWidgetInput, learnTypeColors } from "../src/lib/schema";
import { schemas } from "./fixtures";

describe("type compatibility", () => {
  it("connects equal types and refuses different ones", () => {
    expect(typesCompatible("IMAGE", "IMAGE")).toBe(true);
    expect(typesCompatible("IMAGE", "MASK")).toBe(false);
    expect(typesCompatible("LATENT", "IMAGE")).toBe(false);
    expect(typesCompatible("INT", "FLOAT")).toBe(false);
  });
  it("lets the wildcard connect to anything, both ways", () => {
    expect(typesCompatible("*", "MODEL")).toBe(true);
    expect(typesCompatible("VAE", "*")).toBe(true);
  });
  it("matches unions on any shared member", () => {
    expect(typesCompatible("IMAGE", "IMAGE,MASK")).toBe(true);
    expect(typesCompatible("MASK,LATENT", "IMAGE,MASK")).toBe(true);
    expect(typesCompatible("LATENT", "IMAGE, MASK")).toBe(false);
  });
  it("feeds a choice input from a string", () => {
    expect(typesCompatible("STRING", "COMBO")).toBe(true);
    expect(typesCompatible("INT", "COMBO")).toBe(false);
  });
  it("colours known types as the server does and any other type stably", () => {
    expect(typeColor("IMAGE")).toBe("#64b5f6");
    expect(typeColor("MY_TYPE")).toBe(typeColor("MY_TYPE"));
    expect(typeColor("MY_TYPE")).not.toBe(typeColor("OTHER_TYPE"));
  });
  it("takes a pack's own type colour from the sockets of the node schemas", () => {
    expect(typeColor("PACK_SCORES")).toMatch(/^hsl/);
    learnTypeColors({
      Score: {
        name: "Score", display_name: "Score", category: "test", description: "", output_node: false, version: 1,
        deterministic: true, module: "test_pack",
        inputs: [{ name: "images", type: "IMAGE", required: true, widget: false, color: "#64b5f6" }],
        outputs: [{ name: "SCORES", type: "PACK_SCORES", color: "#f06292" }],
      },
    });
    expect(typeColor("PACK_SCORES")).toBe("#f06292");
    expect(typeColor("PACK_SCORES,IMAGE")).toBe("#f06292");
  });
});

describe("widget values", () => {
  const empty = schemas.EmptyImage;
  const width = empty.inputs.find((i) => i.name === "width")!;
  it("accepts values in range and explains the others", () => {
    expect(checkValue(width, 64)).toBeNull();
    expect(checkValue(width, 0)).toMatch(/at least 1/);
    expect(checkValue(width, 1e9)).toMatch(/at most/);
    expect(checkValue(width, 1.5)).toMatch(/whole number/);
    const method = schemas.ImageScale.inputs.find((i) => i.name === "upscale_method")!;
    expect(checkValue(method, "nope")).toMatch(/not one of the choices/);
  });
  it("starts widgets at their declared defaults", () => {
    expect(defaultValue(width)).toBe(512);
    expect(isWidgetInput(schemas.ImageInvert.inputs[0])).toBe(false);
  });
});

describe("palette", () => {
  it("groups node types by category path", () => {
    const tree = categoryTree(schemas);
    const image = tree.children.find((c) => c.name === "image")!;
    expect(image.nodes.map((n) => n.name)).toContain("SaveImage");
    expect(image.children.map((c) => c.name)).toContain("upscaling");
  });
  it("finds nodes by words, best matches first", () => {
    expect(searchNodes(schemas, "invert")[0].name).toMatch(/Invert/);
    expect(searchNodes(schemas, "save image")[0].name).toBe("SaveImage");
    expect(searchNodes(schemas, "zzzz")).toHaveLength(0);
  });
  it("filters by a dragged link's type", () => {
    const found = searchNodes(schemas, "", { wantInput: "LATENT" }).map((s) => s.name);
    expect(found).toContain("VAEDecode");
    expect(found).not.toContain("EmptyImage");
  });
});
