// ComfyUI formats: recognising documents, and API-format conversion both ways (mirrors
// nodegraph/workflow.py detect_format and nodegraph/formats/comfy_api.py). The UI (litegraph)
// format needs the node schemas' widget order and frontend-only nodes, so the server converts it.
import { NativeWorkflow, isLink } from "./workflow";
import namesTable from "../../../nodegraph/formats/comfy_names.json";
import { SchemaMap } from "./schema";

export type DocFormat = "native" | "comfy_api" | "comfy_ui";

// ComfyUI's frontend facts, in one place for the editor (the server's are nodegraph/formats/comfy_graph.py
// and comfy_ui.py): the node types that exist only in its frontend, the values of the control widget
// written after a seed-like widget, the value of LoadImage's upload widget, litegraph's yellow that
// its notes wear.
export const REROUTE = "Reroute";

// Our node types that ComfyUI names otherwise: one table for the server and the editor
// (nodegraph/formats/comfy_names.json; the first name is the one exported).
const NAMES = Object.entries(namesTable as Record<string, unknown>).filter(([k, v]) => !k.startsWith("_") && Array.isArray(v)) as [string, string[]][];
const EXPORT_NAMES = new Map(NAMES.map(([ours, theirs]) => [ours, theirs[0]]));
const IMPORT_NAMES = new Map(NAMES.flatMap(([ours, theirs]) => theirs.map((t) => [t, ours] as [string, string])));
/** The class_type ComfyUI knows our node type by. */
export const comfyName = (type: string): string => EXPORT_NAMES.get(type) ?? type;
/** Our node type for a ComfyUI class_type, unless the schemas have that name themselves (a pack brings it). */
export const nativeName = (type: string, schemas: SchemaMap): string => (type in schemas ? type : IMPORT_NAMES.get(type) ?? type);
export const FRONTEND_ONLY = new Set([REROUTE, "PrimitiveNode", "Note", "MarkdownNote"]);
export const CONTROL_VALUES = ["fixed", "increment", "decrement", "randomize"];
export const UPLOAD_VALUE = "image";
export const NOTE_COLORS: Record<string, { color: string; bgcolor: string }> = {
  Note: { color: "#432", bgcolor: "#653" },
  MarkdownNote: { color: "#432", bgcolor: "#653" },
};

export function detectFormat(data: unknown): DocFormat | null {
  if (typeof data !== "object" || data === null || Array.isArray(data)) return null;
  const d = data as Record<string, unknown>;
  const nodes = d.nodes;
  if (nodes && typeof nodes === "object" && !Array.isArray(nodes)) {
    const all = Object.values(nodes).every((n) => typeof n === "object" && n !== null && "type" in n);
    if ("version" in d || all) return "native";
  }
  if (Array.isArray(nodes) && "links" in d) return "comfy_ui";
  if (d.prompt && typeof d.prompt === "object" && !Array.isArray(d.prompt)) return "comfy_api";
  const values = Object.values(d);
  if (values.length && values.every((v) => typeof v === "object" && v !== null && "class_type" in v)) return "comfy_api";
  return null;
}

export type ApiPrompt = Record<string, { class_type: string; inputs: Record<string, unknown>; _meta?: { title?: string } }>;

/** The API prompt of a document ({"prompt": {...}} wrappers, as ComfyUI's /prompt body, are unwrapped). */
export function unwrapApi(data: Record<string, unknown>): ApiPrompt {
  const p = data.prompt as Record<string, unknown> | undefined;
  if (p && typeof p === "object" && !("class_type" in p)) return p as ApiPrompt;
  return data as ApiPrompt;
}

function isApiLink(v: unknown): v is [string | number, number] {
  return Array.isArray(v) && v.length === 2 && (typeof v[0] === "string" || typeof v[0] === "number") && Number.isInteger(v[1]) && typeof v[1] !== "boolean";
}

export function apiToNative(prompt: ApiPrompt): NativeWorkflow {
  const nodes: NativeWorkflow["nodes"] = {};
  for (const [id, entry] of Object.entries(prompt)) {
    if (!entry || typeof entry !== "object" || !("class_type" in entry))
      throw new Error(`node ${id}: a ComfyUI API node needs 'class_type' and 'inputs'`);
    const inputs: Record<string, unknown> = {};
    for (const [name, v] of Object.entries(entry.inputs ?? {}))
      inputs[name] = isApiLink(v) ? { node: String(v[0]), output: v[1] } : v;
    nodes[String(id)] = { type: IMPORT_NAMES.get(entry.class_type) ?? entry.class_type, inputs, ...(entry._meta?.title ? { title: entry._meta.title } : {}) };
  }
  return { version: 1, nodes };
}

/** Native → ComfyUI API prompt; named outputs become indexes through the schemas. */
export function nativeToApi(doc: NativeWorkflow, schemas: SchemaMap): ApiPrompt {
  const out: ApiPrompt = {};
  for (const [id, entry] of Object.entries(doc.nodes)) {
    const inputs: Record<string, unknown> = {};
    for (const [name, v] of Object.entries(entry.inputs)) {
      if (isLink(v)) {
        let index = v.output;
        if (typeof index === "string") {
          const src = doc.nodes[v.node];
          const k = src ? schemas[src.type]?.outputs.findIndex((o) => o.name === index) ?? -1 : -1;
          if (k < 0) {
            if (/^\d+$/.test(index)) index = Number(index);
            else throw new Error(`node ${id}: input ${name} links to unknown output ${index}`);
          } else index = k;
        }
        inputs[name] = [v.node, index];
      } else inputs[name] = v;
    }
    out[id] = { class_type: comfyName(entry.type), inputs, _meta: { title: entry.title ?? entry.type } };
  }
  return out;
}

/** Reroute and note nodes of a ComfyUI UI document (what the server resolves away), for a summary. */
export function uiSummary(doc: { nodes?: { type?: string }[]; links?: unknown[] }): { nodes: number; links: number; frontendOnly: number } {
  const nodes = doc.nodes ?? [];
  return { nodes: nodes.length, links: (doc.links ?? []).length, frontendOnly: nodes.filter((n) => FRONTEND_ONLY.has(n.type ?? "")).length };
}

/** ComfyUI's random range limit for control widgets: ±2^50 (its frontend's computeNextNumberValue). */
export const CONTROL_LIMIT = 2 ** 50;

/** The value a widget takes after a queue under its control, as ComfyUI's frontend computes it:
 *  ± one step for increment/decrement, a random step in [min, max] for randomize, then clamped to
 *  [max(min, -2^50), min(max, 2^50)] (clamped, not wrapped). */
export function nextControlValue(value: number, control: string, opts: { min?: number | null; max?: number | null; step?: number | null }, random = Math.random): number {
  const hi = Math.min(CONTROL_LIMIT, opts.max ?? 1);
  const lo = Math.max(-CONTROL_LIMIT, opts.min ?? 0);
  const step = opts.step || 1;
  let v = value;
  if (control === "increment") v += step;
  else if (control === "decrement") v -= step;
  else if (control === "randomize") v = Math.floor(random() * ((hi - lo) / step)) * step + lo;
  return Math.min(Math.max(v, lo), hi);
}
