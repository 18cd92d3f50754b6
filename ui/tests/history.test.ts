import { describe, expect, it } from "vitest";
import { UndoLog } from "../src/lib/history";
import {
  Graph, connect, inHandle, integrityProblems, isOp, newOpNode, newReroute, nextId, outHandle, removeNodes,
  checkConnection, REROUTE_IN, REROUTE_OUT,
} from "../src/lib/graph";
import { schemas } from "./fixtures";

/** A small deterministic PRNG so the random edit sequence is the same on every run. */
function rng(seed: number) {
  return () => {
    seed = (seed * 1664525 + 1013904223) >>> 0;
    return seed / 2 ** 32;
  };
}

const types = ["EmptyImage", "ImageInvert", "ImageBlend", "SaveImage", "PrimitiveInt", "ImageScaleBy", "MaskToImage", "ImageToMask"];

/** One random user action, always producing a new graph object (as the editor's reducers do). */
function randomEdit(g: Graph, rand: () => number): Graph {
  const r = rand();
  const pick = <T,>(xs: T[]) => xs[Math.floor(rand() * xs.length)];
  if (r < 0.3 || g.nodes.length < 2) {
    const t = pick(types);
    return { ...g, nodes: [...g.nodes, newOpNode(schemas[t], nextId(g.nodes), { x: rand() * 1000, y: rand() * 1000 })] };
  }
  if (r < 0.4) {
    return { ...g, nodes: [...g.nodes, newReroute(nextId(g.nodes, "r"), { x: rand() * 1000, y: rand() * 1000 })] };
  }
  if (r < 0.75) {
    // try to connect a random output to a random input; only legal links are made, as in the editor
    for (let k = 0; k < 20; k++) {
      const s = pick(g.nodes);
      const t = pick(g.nodes);
      if (isOp(s) && !schemas[s.data.nodeType].outputs.length) continue;
      if (isOp(t) && !schemas[t.data.nodeType].inputs.length) continue;
      const sh = isOp(s) ? outHandle(pick(schemas[s.data.nodeType].outputs).name) : REROUTE_OUT;
      const th = isOp(t) ? inHandle(pick(schemas[t.data.nodeType].inputs).name) : REROUTE_IN;
      const c = { source: s.id, sourceHandle: sh, target: t.id, targetHandle: th };
      if (checkConnection(c, g, schemas).ok) return { ...g, edges: connect(g.edges, c) };
    }
    return g;
  }
  if (r < 0.85 && g.edges.length) {
    const e = pick(g.edges);
    return { ...g, edges: g.edges.filter((x) => x !== e) };
  }
  if (r < 0.95) return removeNodes(g, [pick(g.nodes).id]);
  const n = pick(g.nodes);
  return { ...g, nodes: g.nodes.map((x) => (x === n ? { ...x, position: { x: x.position.x + 10, y: x.position.y } } : x)) };
}

describe("undo log", () => {
  it("steps back and forth through whole, consistent graphs", () => {
    const rand = rng(42);
    let g: Graph = { nodes: [], edges: [] };
    const log = new UndoLog<Graph>(g, 1000);
    const states: Graph[] = [g];
    for (let i = 0; i < 300; i++) {
      const next = randomEdit(g, rand);
      if (next === g) continue;
      g = next;
      log.commit(g);
      states.push(g);
      expect(integrityProblems(g, schemas)).toEqual([]);
    }
    expect(states.length).toBeGreaterThan(200);
    expect(g.edges.length).toBeGreaterThan(3);
    // all the way back ...
    for (let k = states.length - 2; k >= 0; k--) {
      g = log.undo(g)!;
      expect(g).toBe(states[k]);
      expect(integrityProblems(g, schemas)).toEqual([]);
    }
    expect(log.undo(g)).toBeNull();
    // ... and forward again
    for (let k = 1; k < states.length; k++) {
      g = log.redo(g)!;
      expect(g).toBe(states[k]);
    }
    expect(log.redo(g)).toBeNull();
  });

  it("brings back a deleted node with all its links in one step", () => {
    const nodes = [
      newOpNode(schemas.EmptyImage, "1", { x: 0, y: 0 }),
      newOpNode(schemas.ImageInvert, "2", { x: 0, y: 0 }),
      newOpNode(schemas.SaveImage, "3", { x: 0, y: 0 }),
    ];
    let edges = connect([], { source: "1", sourceHandle: "o:IMAGE", target: "2", targetHandle: "i:image" });
    edges = connect(edges, { source: "2", sourceHandle: "o:IMAGE", target: "3", targetHandle: "i:images" });
    const before: Graph = { nodes, edges };
    const log = new UndoLog<Graph>(before);
    const after = removeNodes(before, ["2"]);
    log.commit(after);
    expect(after.edges).toHaveLength(0);
    const back = log.undo(after)!;
    expect(back.nodes.map((n) => n.id)).toEqual(["1", "2", "3"]);
    expect(back.edges.map((e) => `${e.source}>${e.target}`)).toEqual(["1>2", "2>3"]);
  });

  it("makes one step of a burst of edits to the same widget", () => {
    let t = 0;
    const log = new UndoLog<number>(0, 100, 1000, () => t);
    for (const v of [1, 2, 3]) {
      t += 100;
      log.commit(v, { coalesceKey: "n1.width" });
    }
    t += 5000;
    log.commit(4, { coalesceKey: "n1.width" });
    expect(log.undo(4)).toBe(3);
    expect(log.undo(3)).toBe(0);
  });

  it("forgets the redo branch after a new edit, and bounds its length", () => {
    const log = new UndoLog<number>(0, 3);
    log.commit(1);
    log.commit(2);
    expect(log.undo(2)).toBe(1);
    log.commit(5);
    expect(log.canRedo).toBe(false);
    for (const v of [6, 7, 8, 9]) log.commit(v);
    expect(log.depth.undo).toBe(3);
  });
});
