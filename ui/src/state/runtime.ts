// What the server reports while jobs run: per-node state (running, progress, previews, images,
// errors), the queue, the history and the gallery. Nothing here is part of the undo log.
import { createStore } from "./store";
import { ImageRef, Job, ValidationError, api, jobId } from "../lib/api";
import { EventSocket, PreviewEvent, ServerEvent } from "../lib/events";
import { RunError, withAggregates } from "../lib/runScope";

export interface NodeRun {
  status?: "running" | "cached" | "done" | "error";
  progress?: { value: number; max: number };
  preview?: string; // object URL of the latest live preview
  images?: ImageRef[];
  error?: RunError;
  /** A subgraph instance's summary of the nodes inside it (lib/runScope.ts). */
  aggregate?: boolean;
}

export interface GalleryItem {
  image: ImageRef;
  node: string;
  job: string;
  at: number;
}

export interface Toast {
  id: number;
  kind: "info" | "warn" | "error" | "success";
  text: string;
}

export interface RuntimeState {
  runs: Record<string, NodeRun>;
  connected: boolean;
  serverError: string | null;
  queueRemaining: number;
  paused: boolean;
  running: Job[];
  pending: Job[];
  history: Job[];
  historyTotal: number;
  gallery: GalleryItem[];
  runningJob: string | null;
  toasts: Toast[];
  lightbox: ImageRef | null;
  /** Batch count: how many times Queue (and Ctrl+Enter) queues the workflow. */
  batch: number;
}

export const runtime = createStore<RuntimeState>({
  runs: {},
  connected: false,
  serverError: null,
  queueRemaining: 0,
  paused: false,
  running: [],
  pending: [],
  history: [],
  historyTotal: 0,
  gallery: [],
  runningJob: null,
  toasts: [],
  lightbox: null,
  batch: 1,
});

export const clientId = (() => {
  const key = "nodegraph:client_id";
  let id = sessionStorage.getItem(key);
  if (!id) {
    id = typeof crypto.randomUUID === "function" ? crypto.randomUUID() : `c${Date.now()}${Math.random().toString(16).slice(2)}`;
    sessionStorage.setItem(key, id);
  }
  return id;
})();

let toastSeq = 0;
export function toast(text: string, kind: Toast["kind"] = "info", ms = 4000) {
  const id = ++toastSeq;
  runtime.set((s) => ({ toasts: [...s.toasts.filter((t) => t.text !== text), { id, kind, text }].slice(-4) }));
  setTimeout(() => runtime.set((s) => ({ toasts: s.toasts.filter((t) => t.id !== id) })), ms);
}

function patchRun(node: string, patch: Partial<NodeRun> | ((r: NodeRun) => Partial<NodeRun>)) {
  runtime.set((s) => {
    const prev = s.runs[node] ?? {};
    const p = typeof patch === "function" ? patch(prev) : patch;
    return { runs: withAggregates({ ...s.runs, [node]: { ...prev, ...p } }) };
  });
}

/** Errors from validation (HTTP 400): each on its node, at its input. */
export function showValidationErrors(errors: ValidationError[]) {
  runtime.set((s) => {
    const runs: Record<string, NodeRun> = {};
    for (const [id, r] of Object.entries(s.runs)) runs[id] = { ...r, error: undefined, status: r.status === "error" ? undefined : r.status };
    for (const e of errors) {
      if (!e.node) continue;
      const prev = runs[e.node] ?? {};
      const message = prev.error ? `${prev.error.message}\n${e.message}` : e.message;
      // every stacked error keeps the input it is about, so the node can name each one
      const items = [...(prev.error?.items ?? []), { input: e.input, message: e.message }];
      runs[e.node] = {
        ...prev, status: "error",
        error: { message, input: prev.error?.input ?? e.input, kind: e.kind, nodeType: e.node_type ?? undefined, items },
      };
    }
    return { runs: withAggregates(runs) };
  });
}

/** Forget the error shown for a node (its value was edited). */
export function clearError(node: string) {
  const r = runtime.get().runs[node];
  if (r?.error) patchRun(node, { error: undefined, status: undefined });
}

export function clearAllRuns() {
  for (const r of Object.values(runtime.get().runs)) if (r.preview) URL.revokeObjectURL(r.preview);
  runtime.set({ runs: {} });
}

let executingNode: string | null = null;
/** Nodes that showed images during the running job; cached output nodes get theirs from the job record. */
let imagesThisRun = new Set<string>();

async function fillCachedOutputs(job: string) {
  if (!job) return;
  try {
    const record = await api.job(job);
    const items = jobImages(record).filter((g) => !imagesThisRun.has(g.node));
    const byNode = new Map<string, ImageRef[]>();
    for (const g of items) byNode.set(g.node, [...(byNode.get(g.node) ?? []), g.image]);
    for (const [node, images] of byNode) patchRun(node, { images });
    if (items.length) runtime.set((s) => ({ gallery: [...items.map((g) => ({ ...g, at: Date.now() })), ...s.gallery].slice(0, 200) }));
  } catch {
    /* the job may be gone already: nothing to show */
  }
}

function finishNode(node: string | null) {
  if (!node) return;
  patchRun(node, (r) => ({ status: r.status === "running" ? "done" : r.status, progress: undefined }));
}

function handle(e: ServerEvent | PreviewEvent) {
  if (e.type === "preview") {
    const url = URL.createObjectURL(new Blob([e.image as BlobPart], { type: "image/png" }));
    patchRun(e.node, (r) => {
      if (r.preview) URL.revokeObjectURL(r.preview);
      return { preview: url };
    });
    return;
  }
  switch (e.type) {
    case "status":
      runtime.set({ queueRemaining: e.data.queue_remaining ?? 0, paused: Boolean(e.data.paused) });
      scheduleRefresh();
      break;
    case "execution_start":
      executingNode = null;
      imagesThisRun = new Set();
      runtime.set((s) => {
        const runs: Record<string, NodeRun> = {};
        for (const [id, r] of Object.entries(s.runs)) if (!r.aggregate) runs[id] = { images: r.images, preview: r.preview };
        return { runs, runningJob: e.data.prompt_id };
      });
      scheduleRefresh();
      break;
    case "execution_cached":
      for (const n of e.data.nodes ?? []) patchRun(String(n), { status: "cached", error: undefined });
      break;
    case "executing":
      finishNode(executingNode);
      executingNode = e.data.node == null ? null : String(e.data.node);
      if (executingNode) patchRun(executingNode, { status: "running", error: undefined });
      break;
    case "progress":
      patchRun(String(e.data.node), { status: "running", progress: { value: Number(e.data.value), max: Number(e.data.max) } });
      break;
    case "executed": {
      const node = String(e.data.node);
      const job = e.data.prompt_id;
      const images = ((e.data.output?.images ?? []) as ImageRef[]).filter((i) => i && i.filename);
      patchRun(node, (r) => {
        if (images.length && r.preview) URL.revokeObjectURL(r.preview);
        return images.length ? { images, preview: undefined } : {};
      });
      if (images.length) {
        imagesThisRun.add(node);
        const at = Date.now();
        runtime.set((s) => ({ gallery: [...images.map((image) => ({ image, node, job, at })), ...s.gallery].slice(0, 200) }));
      }
      break;
    }
    case "execution_error": {
      const d = e.data;
      const node = d.node_id == null ? null : String(d.node_id);
      const message = d.exception_message || "the node failed";
      if (node) patchRun(node, { status: "error", progress: undefined, error: { message, kind: d.exception_type || "error", nodeType: d.node_type ?? undefined } });
      toast(`${d.node_type ?? "A node"} failed: ${message}`, "error", 6000);
      executingNode = null;
      runtime.set({ runningJob: null });
      scheduleRefresh();
      break;
    }
    case "execution_interrupted":
      finishNode(executingNode);
      executingNode = null;
      runtime.set({ runningJob: null });
      toast("Interrupted", "warn");
      scheduleRefresh();
      break;
    case "execution_success":
      finishNode(executingNode);
      executingNode = null;
      runtime.set({ runningJob: null });
      void fillCachedOutputs(e.data.prompt_id);
      scheduleRefresh();
      break;
  }
}

let refreshTimer: ReturnType<typeof setTimeout> | null = null;
function scheduleRefresh() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    void refreshQueue();
  }, 150);
}

export async function refreshQueue() {
  try {
    const [q, h] = await Promise.all([api.queue(), api.history(0, 30)]);
    runtime.set({ running: q.running, pending: q.pending, paused: Boolean(q.paused), history: h.items, historyTotal: h.total });
  } catch {
    /* the socket status shows the connection; nothing to add here */
  }
}

let socket: EventSocket | null = null;

export function connectEvents() {
  if (socket) return;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  socket = new EventSocket(`${proto}//${location.host}/v1/ws?client_id=${encodeURIComponent(clientId)}`, handle);
  socket.onStatus = (connected) => {
    runtime.set({ connected });
    if (connected) void refreshQueue();
  };
  socket.open();
}

/** Job outputs (from history) as gallery items. */
export function jobImages(job: Job): GalleryItem[] {
  const out: GalleryItem[] = [];
  for (const [node, o] of Object.entries(job.outputs ?? {})) {
    for (const image of ((o as { images?: ImageRef[] })?.images ?? [])) out.push({ image, node, job: jobId(job), at: 0 });
  }
  return out;
}

/** Test hook: feed an event as if the server sent it. */
export const _handleEvent = handle;
