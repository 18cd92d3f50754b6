import { describe, expect, it } from "vitest";
import {
  Graph, checkConnection, connect, copySelection, inHandle, integrityProblems, newOpNode, newReroute, nextId,
  outHandle, paste, removeNodes, REROUTE_IN, REROUTE_OUT, outputType, nodesInGroup, newGroup,
} from "../src/lib/graph";
import { schemas } from "./fixtures";

function imageChain(): Graph {
  const nodes = [
    newOpNode(schemas.EmptyImage, "1", { x: 0, y: 0 }),
    newOpNode(schemas.ImageInvert, "2", { x: 300, y: 0 }),
    newOpNode(schemas.SaveImage, "3", { x: 600, y: 0 }),
    newOpNode(schemas.PrimitiveInt, "4", { x: 0, y: 300 }),
  ];
  let edges = connect([], { source: "1", sourceHandle: outHandle("IMAGE"), target: "2", targetHandle: inHandle("image") });
  edges = connect(edges, { source: "2", sourceHandle: outHandle("IMAGE"), target: "3", targetHandle: inHandle("images") });
  return { nodes, edges };
}

describe("connections", () => {
  it("accepts a link of the right type", () => {
    const g = imageChain();
    expect(checkConnection({ source: "1", sourceHandle: "o:IMAGE", target: "3", targetHandle: "i:images" }, g, schemas).ok).toBe(true);
  });
  it("refuses a wrong type and says why", () => {
    const g = imageChain();
    const v = checkConnection({ source: "4", sourceHandle: "o:INT", target: "2", targetHandle: "i:image" }, g, schemas);
    expect(v.ok).toBe(false);
    expect(v.reason).toMatch(/INT cannot connect to image \(IMAGE\)/);
  });
  it("lets a widget input take a link of its type", () => {
    const g = imageChain();
    expect(checkConnection({ source: "4", sourceHandle: "o:INT", target: "1", targetHandle: "i:width" }, g, schemas).ok).toBe(true);
    expect(checkConnection({ source: "1", sourceHandle: "o:IMAGE", target: "1", targetHandle: "i:width" }, g, schemas).ok).toBe(false);
  });
  it("refuses cycles", () => {
    const g = imageChain();
    const v = checkConnection({ source: "2", sourceHandle: "o:IMAGE", target: "2", targetHandle: "i:image" }, g, schemas);
    expect(v.ok).toBe(false);
    g.nodes.push(newOpNode(schemas.ImageBlend, "5", { x: 0, y: 0 }));
    g.edges = connect(g.edges, { source: "2", sourceHandle: "o:IMAGE", target: "5", targetHandle: "i:image1" });
    expect(checkConnection({ source: "5", sourceHandle: "o:IMAGE", target: "2", targetHandle: "i:image" }, g, schemas).reason).toMatch(/cycle/);
  });
  it("keeps one link per input", () => {
    const g = imageChain();
    const edges = connect(g.edges, { source: "1", sourceHandle: "o:IMAGE", target: "3", targetHandle: "i:images" });
    expect(edges.filter((e) => e.target === "3")).toHaveLength(1);
    expect(edges.find((e) => e.target === "3")!.source).toBe("1");
  });
  it("types reroutes by what flows in, and checks what they feed", () => {
    const g = imageChain();
    g.nodes.push(newReroute("r1", { x: 0, y: 0 }));
    expect(outputType("r1", REROUTE_OUT, g, schemas)).toBe("*");
    g.edges = connect(g.edges, { source: "1", sourceHandle: "o:IMAGE", target: "r1", targetHandle: REROUTE_IN });
    expect(outputType("r1", REROUTE_OUT, g, schemas)).toBe("IMAGE");
    expect(checkConnection({ source: "r1", sourceHandle: REROUTE_OUT, target: "1", targetHandle: "i:width" }, g, schemas).ok).toBe(false);
    g.edges = connect(g.edges, { source: "r1", sourceHandle: REROUTE_OUT, target: "3", targetHandle: "i:images" });
    // an INT may not now flow into a reroute that feeds an IMAGE input
    expect(checkConnection({ source: "4", sourceHandle: "o:INT", target: "r1", targetHandle: REROUTE_IN }, g, schemas).ok).toBe(false);
  });
});

describe("editing", () => {
  it("removes a node together with its links", () => {
    const g = removeNodes(imageChain(), ["2"]);
    expect(g.nodes.map((n) => n.id)).toEqual(["1", "3", "4"]);
    expect(g.edges).toHaveLength(0);
    expect(integrityProblems(g, schemas)).toEqual([]);
  });
  it("numbers new nodes after the highest id", () => {
    expect(nextId(imageChain().nodes)).toBe("5");
    expect(nextId([newReroute("r7", { x: 0, y: 0 })], "r")).toBe("r8");
  });
  it("copies nodes with the links among them and pastes them with fresh ids", () => {
    const g = imageChain();
    const clip = copySelection(g, ["1", "2"]);
    expect(clip.edges).toHaveLength(1);
    const { graph, ids } = paste(g, clip, { x: 1000, y: 1000 });
    expect(ids).toEqual(["5", "6"]);
    expect(graph.nodes.find((n) => n.id === "5")!.position).toEqual({ x: 1000, y: 1000 });
    expect(graph.edges.some((e) => e.source === "5" && e.target === "6")).toBe(true);
    expect(integrityProblems(graph, schemas)).toEqual([]);
    // the copy is deep: editing the paste leaves the original alone
    (graph.nodes.find((n) => n.id === "5")!.data as { values: Record<string, unknown> }).values.width = 7;
    expect((g.nodes[0].data as { values: Record<string, unknown> }).values.width).toBe(512);
  });
  it("finds the nodes inside a group", () => {
    const g = imageChain();
    const group = newGroup("g1", "Pre", -20, -40, 600, 300);
    expect(nodesInGroup(group, g.nodes)).toEqual(["1", "2"]);
  });
  it("reports broken graphs", () => {
    const g = imageChain();
    g.edges.push({ id: "x", source: "9", sourceHandle: "o:IMAGE", target: "3", targetHandle: "i:images" });
    const problems = integrityProblems(g, schemas);
    expect(problems.join("\n")).toMatch(/missing node 9/);
    expect(problems.join("\n")).toMatch(/two links/);
  });
  it("starts seeds on randomize for new nodes", () => {
    const k = newOpNode(schemas.KSampler, "1", { x: 0, y: 0 });
    expect(k.data.controls).toEqual({ seed: "randomize" });
    expect(k.data.values.steps).toBe(20);
    expect("model" in k.data.values).toBe(false);
  });
});
