// lib/layout.ts: the layered layout never overlaps two nodes, whatever their sizes and links.
import { describe, expect, it } from "vitest";
import { GAP_X, layeredLayout, overlaps } from "../src/lib/layout";

function rng(seed: number) {
  return () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
}

describe("layered layout", () => {
  it("puts each node right of its inputs, columns by longest path", () => {
    const edges = [
      { source: "1", target: "3" },
      { source: "2", target: "3" },
      { source: "3", target: "4" },
      { source: "1", target: "4" },
    ];
    const pos = layeredLayout(["1", "2", "3", "4"], edges, () => ({ width: 200, height: 100 }));
    expect(pos.get("1")!.x).toBe(0);
    expect(pos.get("2")!.x).toBe(0);
    expect(pos.get("3")!.x).toBe(200 + GAP_X);
    expect(pos.get("4")!.x).toBe(2 * (200 + GAP_X)); // longest path, not the direct link from 1
    expect(pos.get("2")!.y).toBeGreaterThan(pos.get("1")!.y);
  });

  it("never overlaps, on random graphs with random sizes (and survives a cycle)", () => {
    const r = rng(7);
    for (let trial = 0; trial < 40; trial++) {
      const n = 2 + Math.floor(r() * 40);
      const ids = Array.from({ length: n }, (_, k) => String(k + 1));
      const edges: { source: string; target: string }[] = [];
      for (let k = 1; k < n; k++) for (let j = 0; j < 2; j++) if (r() < 0.7) edges.push({ source: ids[Math.floor(r() * k)], target: ids[k] });
      if (trial % 5 === 0) edges.push({ source: ids[n - 1], target: ids[0] });
      const sizes = new Map(ids.map((id) => [id, { width: 120 + r() * 300, height: 30 + r() * 500 }]));
      const pos = layeredLayout(ids, edges, (id) => sizes.get(id)!);
      expect(pos.size).toBe(n);
      const boxes = ids.map((id) => ({ id, ...pos.get(id)!, ...sizes.get(id)! }));
      expect(overlaps(boxes)).toEqual([]);
    }
  });

  it("overlaps() finds boxes that do overlap", () => {
    expect(overlaps([{ id: "a", x: 0, y: 0, width: 10, height: 10 }, { id: "b", x: 9, y: 9, width: 5, height: 5 }])).toEqual([["a", "b"]]);
    expect(overlaps([{ id: "a", x: 0, y: 0, width: 10, height: 10 }, { id: "b", x: 10, y: 0, width: 5, height: 5 }])).toEqual([]);
  });
});
