import { describe, expect, it } from "vitest";
import { ScopedRun, aggregateRun, runKey, withAggregates } from "../src/lib/runScope";

// The server expands subgraph instances and reports inner nodes by their id path joined with ":"
// (nodegraph/formats/comfy_graph.py Scope.flat_id, as ComfyUI's executor names expanded nodes).
describe("run keys inside subgraphs", () => {
  it("joins the entered instances' ids", () => {
    expect(runKey([], "5")).toBe("5");
    expect(runKey(["10"], "5")).toBe("10:5");
    expect(runKey(["10", "3"], "7")).toBe("10:3:7");
  });
});

describe("an instance sums up its inside", () => {
  it("is running with the running inner node's progress", () => {
    const runs: Record<string, ScopedRun> = { "10:4": { status: "done" }, "10:5": { status: "running", progress: { value: 3, max: 8 } }, "2": { status: "done" } };
    expect(aggregateRun(runs, "10")).toEqual({ aggregate: true, status: "running", progress: { value: 3, max: 8 } });
    expect(aggregateRun(runs, "2")).toBeUndefined();
  });

  it("names the failing inner node, any depth", () => {
    const runs: Record<string, ScopedRun> = {
      "10:4": { status: "done" },
      "10:3:7": { status: "error", error: { message: "out of range", kind: "ValueError", nodeType: "ImageScaleBy" } },
    };
    const sum = aggregateRun(runs, "10")!;
    expect(sum.status).toBe("error");
    expect(sum.error!.message).toBe("inside, node 3:7 (ImageScaleBy): out of range");
    expect(sum.error!.items).toEqual([{ input: null, message: "inside, node 3:7 (ImageScaleBy): out of range" }]);
    expect(aggregateRun(runs, "10:3")!.error!.message).toBe("inside, node 7 (ImageScaleBy): out of range");
  });

  it("is done once anything inside ran, cached when all was cached", () => {
    expect(aggregateRun({ "1:2": { status: "cached" }, "1:3": { status: "done" } }, "1")!.status).toBe("done");
    expect(aggregateRun({ "1:2": { status: "cached" }, "1:3": { status: "cached" } }, "1")!.status).toBe("cached");
    expect(aggregateRun({ "1:2": {} }, "1")).toBeUndefined();
  });
});

describe("withAggregates", () => {
  it("adds a summary for each instance at every depth and drops stale ones", () => {
    const runs = withAggregates<ScopedRun>({ "10:3:7": { status: "running" }, "4": { status: "done" } });
    expect(Object.keys(runs).sort()).toEqual(["10", "10:3", "10:3:7", "4"]);
    expect(runs["10"]).toEqual({ aggregate: true, status: "running", progress: undefined });
    // the inner node finished and its run was cleared: the summaries go with it
    const later = withAggregates<ScopedRun>({ ...runs, "10:3:7": {} });
    expect(later["10"]).toBeUndefined();
    expect(later["10:3"]).toBeUndefined();
  });

  it("keeps the same summary object while nothing changed, and never overrides a reported run", () => {
    const first = withAggregates<ScopedRun>({ "10:5": { status: "running", progress: { value: 1, max: 4 } }, "2": {} });
    const second = withAggregates<ScopedRun>({ ...first, "2": { status: "done" } });
    expect(second["10"]).toBe(first["10"]);
    const third = withAggregates<ScopedRun>({ ...second, "10:5": { status: "running", progress: { value: 2, max: 4 } } });
    expect(third["10"]).not.toBe(first["10"]);
    expect(third["10"].progress).toEqual({ value: 2, max: 4 });
    expect(withAggregates<ScopedRun>({ "10": { status: "done" }, "10:5": { status: "running" } })["10"]).toEqual({ status: "done" });
  });
});

describe("validation errors inside", () => {
  it("name the inner node and its input, and mark no input on the instance", () => {
    const sum = aggregateRun({ "7:3": { status: "error", error: {
      message: "a\nb", input: "scale_by", nodeType: "ImageScaleBy",
      items: [{ input: "scale_by", message: "a" }, { input: null, message: "b" }] } } }, "7")!;
    expect(sum.error!.items).toEqual([
      { input: null, message: "inside, node 3 (ImageScaleBy), scale_by: a" },
      { input: null, message: "inside, node 3 (ImageScaleBy): b" },
    ]);
    expect(sum.error!.input).toBeUndefined();
  });
});
