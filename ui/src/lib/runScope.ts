// Node status inside subgraphs. The server expands each subgraph instance, so an inner node runs
// under its path of ids ("10:5": node 5 inside instance 10; "10:3:7" one level deeper), as
// ComfyUI's executor does. The canvas shows one level: a node there finds its status under the
// path of the instances the user entered, and an instance node shows its inside summed up.

export interface RunError {
  message: string;
  input?: string | null;
  kind?: string;
  nodeType?: string;
  items?: { input?: string | null; message: string }[];
}

export interface ScopedRun {
  status?: "running" | "cached" | "done" | "error";
  progress?: { value: number; max: number };
  error?: RunError;
  /** Summed up from the nodes inside a subgraph instance (recomputed, never reported by the server). */
  aggregate?: boolean;
}

/** The key a node's run is reported under, on the level reached through `instances` (root first). */
export function runKey(instances: readonly string[], id: string): string {
  return instances.length ? `${instances.join(":")}:${id}` : id;
}

/** One instance's status from the runs of the nodes inside it (any depth): an error names the inner node. */
export function aggregateRun<R extends ScopedRun>(runs: Record<string, R>, instance: string): ScopedRun | undefined {
  const prefix = `${instance}:`;
  const inner = Object.entries(runs).filter(([k, r]) => k.startsWith(prefix) && !r.aggregate);
  if (!inner.length) return undefined;
  const failed = inner.filter(([, r]) => r.status === "error" && r.error);
  if (failed.length) {
    const items = failed.flatMap(([k, r]) => {
      const who = `node ${k.slice(prefix.length)}${r.error!.nodeType ? ` (${r.error!.nodeType})` : ""}`;
      const lines = r.error!.items?.length ? r.error!.items : [{ input: r.error!.input, message: r.error!.message }];
      // the inner input is named in the text: the instance has no such input to mark
      return lines.map((it) => ({ input: null, message: `inside, ${who}${it.input ? `, ${it.input}` : ""}: ${it.message}` }));
    });
    return { aggregate: true, status: "error", error: { message: items.map((i) => i.message).join("\n"), kind: failed[0][1].error!.kind, items } };
  }
  const running = inner.find(([, r]) => r.status === "running");
  if (running) return { aggregate: true, status: "running", progress: running[1].progress };
  if (inner.some(([, r]) => r.status === "done")) return { aggregate: true, status: "done" };
  if (inner.every(([, r]) => r.status === "cached")) return { aggregate: true, status: "cached" };
  return undefined;
}

/** `runs` with every instance's summary (at each depth) recomputed from the nodes inside it. */
export function withAggregates<R extends ScopedRun>(runs: Record<string, R>): Record<string, R> {
  const instances = new Set<string>();
  for (const k of Object.keys(runs)) {
    if (runs[k].aggregate) continue;
    const parts = k.split(":");
    for (let n = 1; n < parts.length; n++) instances.add(parts.slice(0, n).join(":"));
  }
  const out: Record<string, R> = {};
  for (const [k, r] of Object.entries(runs)) if (!r.aggregate) out[k] = r;
  for (const inst of instances) {
    if (out[inst]) continue; // the server reported on this id itself
    const sum = aggregateRun(runs, inst);
    if (!sum) continue;
    const before = runs[inst];
    // the same object when nothing changed, so the instance node does not redraw on every event
    out[inst] = (before && before.aggregate && JSON.stringify(before) === JSON.stringify(sum) ? before : sum) as R;
  }
  return out;
}
