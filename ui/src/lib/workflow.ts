// Native workflow JSON <-> editor graph. Reroutes and groups are editor-only: they live in the
// document's "ui" and are resolved to direct links for the server.
import {
  GEdge, GNode, Graph, NodeMode, OpData, SeedControl, connect, handleName, inHandle, isGroup, isNote, isOp, isReroute,
  incomingIndex, newGroup, newNote, newReroute, nodeOutputs, nodeSize, outHandle, resolveSource, REROUTE_IN, REROUTE_OUT,
} from "./graph";
import { SchemaMap, isWidgetInput, defaultValue } from "./schema";
import { layoutNodes, layoutSize } from "./layout";
import type { components } from "../generated/api";

export type NativeLink = { node: string; output: string | number };

export interface NativeNode {
  type: string;
  inputs: Record<string, unknown>;
  title?: string;
  mode?: NodeMode;
  ui?: Record<string, unknown>;
}

export interface NativeWorkflow {
  version: number;
  nodes: Record<string, NativeNode>;
  outputs?: string[] | null;
  ui?: Record<string, unknown>;
  meta?: Record<string, unknown>;
}

// The editor's view of the document is stricter than the server's (which fills defaults); the
// type check fails here if what the editor writes stops being a Workflow the server accepts.
const acceptedByServer = (w: NativeWorkflow): components["schemas"]["Workflow"] => w;
void acceptedByServer;

export interface GroupDoc {
  title: string;
  bounding: [number, number, number, number];
  color?: string;
}

/** A note (ComfyUI's Note / MarkdownNote) as the native document keeps it, in "ui.notes". */
export interface NoteDoc {
  id: string;
  type: string;
  pos: [number, number];
  size?: [number, number];
  text: string;
  title?: string;
  color?: string;
  bgcolor?: string;
}

export interface RerouteDoc {
  id: string;
  pos: [number, number];
  /** ComfyUI's reroute on a link (extra.reroutes, not a Reroute node): its id there, written back as such. */
  comfy_reroute?: number;
}

/** An editor link that touches a reroute, in handle names (kept so reroutes survive a save). */
export interface RerouteLinkDoc {
  source: string;
  output: string;
  target: string;
  input: string;
}

export function isLink(v: unknown): v is NativeLink {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const keys = Object.keys(v);
  return keys.length === 2 && "node" in v && "output" in v;
}

const round = (v: number) => Math.round(v * 10) / 10;

/** Serialise the editor graph as a native workflow (what is saved, and what the server runs). */
export function toNative(g: Graph, schemas: SchemaMap, extra: { viewport?: { x: number; y: number; zoom: number } } = {}): NativeWorkflow {
  const index = new Map(g.nodes.map((n) => [n.id, n]));
  // indexes built once: per-node scans of every edge made a 1,000-node save O(n²)
  const incoming = incomingIndex(g.edges);
  const linkedInto = new Map<string, string[]>();
  for (const e of g.edges) linkedInto.set(e.target, [...(linkedInto.get(e.target) ?? []), handleName(e.targetHandle)]);
  const nodes: Record<string, NativeNode> = {};
  const groups: GroupDoc[] = [];
  const reroutes: RerouteDoc[] = [];
  const rerouteLinks: RerouteLinkDoc[] = [];
  const notes: NoteDoc[] = [];

  for (const n of g.nodes) {
    if (isGroup(n)) {
      const s = nodeSize(n);
      groups.push({
        title: n.data.title,
        bounding: [round(n.position.x), round(n.position.y), round(s.width), round(s.height)],
        ...(n.data.color ? { color: n.data.color } : {}),
      });
      continue;
    }
    if (isReroute(n)) {
      reroutes.push({
        id: n.id, pos: [round(n.position.x), round(n.position.y)],
        ...(n.data.comfyReroute !== undefined ? { comfy_reroute: n.data.comfyReroute } : {}),
      });
      continue;
    }
    if (isNote(n)) {
      const s = nodeSize(n);
      const { noteType, text, title, color, bgcolor } = n.data;
      notes.push({
        id: n.id, type: noteType, pos: [round(n.position.x), round(n.position.y)], size: [round(s.width), round(s.height)], text,
        ...(title ? { title } : {}), ...(color ? { color } : {}), ...(bgcolor ? { bgcolor } : {}),
      });
      continue;
    }
    if (!isOp(n)) continue;
    const schema = schemas[n.data.nodeType];
    const inputs: Record<string, unknown> = {};
    const converted = new Set(n.data.converted ?? []);
    const linkedNames = new Set<string>();
    const names = schema ? schema.inputs.map((i) => i.name) : [];
    for (const name of Object.keys(n.data.values)) if (!names.includes(name)) names.push(name);
    for (const name of linkedInto.get(n.id) ?? []) if (!names.includes(name)) names.push(name);
    for (const name of names) {
      const feed = incoming.get(`${n.id}\u0000${inHandle(name)}`);
      if (feed) {
        linkedNames.add(name);
        const src = resolveSource(feed.source, feed.sourceHandle, index, g.edges, incoming);
        if (src) inputs[name] = { node: src.node, output: outputValue(index.get(src.node), src.output, schemas) };
        continue;
      }
      if (converted.has(name)) continue; // a socket with nothing plugged in: validation says so
      const inp = schema?.inputs.find((i) => i.name === name);
      if (inp && !isWidgetInput(inp)) continue;
      if (name in n.data.values) inputs[name] = n.data.values[name];
    }
    const ui: Record<string, unknown> = { ...(n.data.uiExtra ?? {}), pos: [round(n.position.x), round(n.position.y)] };
    if (n.data.converted?.length) ui.converted = [...n.data.converted];
    if (n.data.controls && Object.keys(n.data.controls).length) ui.controls = { ...n.data.controls };
    // widget values hidden behind links, so that unlinking after a reload restores them
    const hidden: Record<string, unknown> = {};
    for (const name of linkedNames) if (name in n.data.values) hidden[name] = n.data.values[name];
    if (Object.keys(hidden).length) ui.linked_values = hidden;
    if (n.data.extraOutputs?.length && !schema) ui.outputs = [...n.data.extraOutputs];
    writeLook(n, ui);
    const entry: NativeNode = { type: n.data.nodeType, inputs };
    if (n.data.title) entry.title = n.data.title;
    if (n.data.mode) entry.mode = n.data.mode;
    entry.ui = ui;
    nodes[n.id] = entry;
  }
  for (const e of g.edges) {
    if (isReroute(index.get(e.source)) || isReroute(index.get(e.target)))
      rerouteLinks.push({ source: e.source, output: handleName(e.sourceHandle), target: e.target, input: handleName(e.targetHandle) });
  }
  const ui: Record<string, unknown> = {};
  if (groups.length) ui.groups = groups;
  if (notes.length) ui.notes = notes;
  if (reroutes.length) {
    ui.reroutes = reroutes;
    ui.reroute_links = rerouteLinks;
  }
  if (extra.viewport) ui.viewport = extra.viewport;
  const doc: NativeWorkflow = { version: 1, nodes };
  if (Object.keys(ui).length) doc.ui = ui;
  return doc;
}

/** Outputs are written by name; an unknown type's numeric output (from a ComfyUI import) stays a number. */
function outputValue(node: GNode | undefined, output: string, schemas: SchemaMap): string | number {
  if (isOp(node) && !schemas[node.data.nodeType] && /^\d+$/.test(output)) return Number(output);
  return output;
}

/** The workflow as the server should run it: no editor layout at all. */
export function toRunnable(g: Graph, schemas: SchemaMap): NativeWorkflow {
  const doc = toNative(g, schemas);
  for (const n of Object.values(doc.nodes)) delete n.ui;
  delete doc.ui;
  return doc;
}

const LOOK_KEYS = ["size", "collapsed", "pinned", "color", "bgcolor"];

/** A node's look in its document's ui: size, collapsed, pinned, colours (ComfyUI's names). */
function writeLook(n: GNode<OpData>, ui: Record<string, unknown>) {
  const w = n.width ?? (n.style?.width as number | undefined);
  const h = n.height ?? (n.style?.height as number | undefined);
  if (typeof w === "number" && typeof h === "number") ui.size = [round(w), round(h)];
  if (n.data.collapsed) ui.collapsed = true;
  if (n.data.pinned) ui.pinned = true;
  if (n.data.color) ui.color = n.data.color;
  if (n.data.bgcolor) ui.bgcolor = n.data.bgcolor;
}

/** The node fields a document's ui sets; returns the React Flow node props (size, draggable). */
function readLook(ui: Record<string, unknown>, data: OpData): Partial<GNode> {
  if (ui.collapsed === true) data.collapsed = true;
  if (ui.pinned === true) data.pinned = true;
  if (typeof ui.color === "string") data.color = ui.color;
  if (typeof ui.bgcolor === "string") data.bgcolor = ui.bgcolor;
  const out: Partial<GNode> = {};
  if (data.pinned) out.draggable = false;
  const size = ui.size;
  if (Array.isArray(size) && size.length >= 2 && size.every((v) => typeof v === "number" && v > 0)) {
    out.width = size[0] as number;
    out.height = size[1] as number;
  }
  return out;
}

function asXY(pos: unknown): { x: number; y: number } | null {
  if (Array.isArray(pos) && pos.length >= 2) return { x: Number(pos[0]) || 0, y: Number(pos[1]) || 0 };
  if (pos && typeof pos === "object") {
    const p = pos as Record<string, unknown>; // ComfyUI sometimes writes {"0": x, "1": y}
    const x = p.x ?? p["0"];
    const y = p.y ?? p["1"];
    if (x !== undefined && y !== undefined) return { x: Number(x) || 0, y: Number(y) || 0 };
  }
  return null;
}

/** Output name for a link's output field (an index maps through the schema). */
function outputName(node: NativeNode | undefined, output: string | number, schemas: SchemaMap): string {
  if (typeof output === "number" || /^\d+$/.test(String(output))) {
    const schema = node ? schemas[node.type] : undefined;
    const o = schema?.outputs[Number(output)];
    if (o) return o.name;
  }
  return String(output);
}

export interface LoadedGraph extends Graph {
  viewport?: { x: number; y: number; zoom: number };
  /** True when some nodes had no position and were laid out automatically. */
  laidOut: boolean;
  /** Those nodes (laid out again once drawn, with their measured sizes: state/autolayout.ts). */
  unplaced?: string[];
}

/** Load a native workflow into the editor graph. */
export function fromNative(doc: NativeWorkflow, schemas: SchemaMap): LoadedGraph {
  const nodes: GNode[] = [];
  let edges: GEdge[] = [];
  const unplaced: string[] = [];
  const byId = doc.nodes ?? {};

  for (const [id, entry] of Object.entries(byId)) {
    const schema = schemas[entry.type];
    const ui = { ...(entry.ui ?? {}) };
    const pos = asXY(ui.pos);
    if (!pos) unplaced.push(id);
    const values: Record<string, unknown> = {};
    const controls: Record<string, SeedControl> = {};
    const hidden = (ui.linked_values ?? {}) as Record<string, unknown>;
    if (schema) {
      for (const inp of schema.inputs) {
        if (!isWidgetInput(inp)) continue;
        const v = entry.inputs?.[inp.name];
        values[inp.name] = v !== undefined && !isLink(v) ? v : inp.name in hidden ? hidden[inp.name] : defaultValue(inp);
        // a subgraph's promoted seed has a control only where its file wrote one (frontends differ)
        if (inp.control_after_generate && schema.module !== "subgraph") controls[inp.name] = "fixed";
      }
    }
    for (const [name, v] of Object.entries(entry.inputs ?? {})) {
      if (!isLink(v) && !(name in values)) values[name] = v; // unknown inputs survive a round trip
    }
    const savedControls = (ui.controls ?? {}) as Record<string, SeedControl>;
    for (const [k, v] of Object.entries(savedControls))
      if (k in controls || !schema || schema.inputs.some((i) => i.name === k && i.control_after_generate)) controls[k] = v;
    const data: OpData = { kind: "op", nodeType: entry.type, values };
    if (entry.title) data.title = entry.title;
    if (Array.isArray(ui.converted) && ui.converted.length) data.converted = ui.converted.map(String);
    if (Object.keys(controls).length) data.controls = controls;
    if (!schema && Array.isArray(ui.outputs)) data.extraOutputs = ui.outputs.map(String);
    if (entry.mode === "muted" || entry.mode === "bypassed") data.mode = entry.mode;
    const look = readLook(ui, data);
    for (const k of ["pos", "converted", "controls", "linked_values", "outputs", ...LOOK_KEYS]) delete ui[k];
    if (Object.keys(ui).length) data.uiExtra = ui;
    nodes.push({ id, type: "op", position: pos ?? { x: 0, y: 0 }, data, ...look });
  }

  const opIndex = new Map(nodes.map((n) => [n.id, n as GNode<OpData>]));
  for (const [id, entry] of Object.entries(byId)) {
    for (const [name, v] of Object.entries(entry.inputs ?? {})) {
      if (!isLink(v)) continue;
      const srcId = String(v.node);
      const src = opIndex.get(srcId);
      if (!src) continue; // a link to a missing node: validation reports it; the editor cannot draw it
      const out = outputName(byId[srcId], v.output, schemas);
      if (!schemas[src.data.nodeType]) {
        const extra = src.data.extraOutputs ?? [];
        if (!extra.includes(out)) src.data.extraOutputs = [...extra, out];
      }
      // one link per (node, input) here, so nothing to replace: append (connect() over all edges each time is O(n²))
      edges.push(...connect([], { source: srcId, sourceHandle: outHandle(out), target: id, targetHandle: inHandle(name) }, edgeTypeOf(src, out, schemas)));
    }
  }

  const ui = doc.ui ?? {};
  // reroutes: put back the editor links that went through them
  const reroutes = Array.isArray(ui.reroutes) ? (ui.reroutes as RerouteDoc[]) : [];
  for (const r of reroutes) {
    const n = newReroute(String(r.id), asXY(r.pos) ?? { x: 0, y: 0 });
    if (typeof r.comfy_reroute === "number") n.data.comfyReroute = r.comfy_reroute;
    nodes.push(n);
  }
  const known = new Set(nodes.map((n) => n.id));
  const rerouteIds = new Set(reroutes.map((r) => String(r.id)));
  const rlinks = Array.isArray(ui.reroute_links) ? (ui.reroute_links as RerouteLinkDoc[]) : [];
  for (const l of rlinks) {
    if (!known.has(l.source) || !known.has(l.target)) continue;
    const sourceHandle = rerouteIds.has(l.source) ? REROUTE_OUT : outHandle(l.output);
    const targetHandle = rerouteIds.has(l.target) ? REROUTE_IN : inHandle(l.input);
    edges = connect(edges, { source: l.source, sourceHandle, target: l.target, targetHandle });
  }
  // A direct link that a reroute chain now delivers is dropped (connect() replaced it already);
  // one the document changed since (the reroute no longer leads to the same source) is kept direct.
  edges = edges.filter((e) => {
    if (!rerouteIds.has(e.source)) return true;
    const t = opIndex.get(e.target);
    if (!t) return true;
    const src = resolveSource(e.source, e.sourceHandle, nodes, edges);
    const declared = byId[e.target]?.inputs?.[handleName(e.targetHandle)];
    if (!src || !isLink(declared)) return false;
    return String(declared.node) === src.node && outputName(byId[src.node], declared.output, schemas) === src.output;
  });
  // put back the direct links the filter removed (reroute chains that no longer match)
  const fed = incomingIndex(edges);
  for (const [id, entry] of Object.entries(byId)) {
    for (const [name, v] of Object.entries(entry.inputs ?? {})) {
      if (!isLink(v) || !opIndex.has(String(v.node))) continue;
      if (fed.has(`${id}\u0000${inHandle(name)}`)) continue;
      const out = outputName(byId[String(v.node)], v.output, schemas);
      edges = connect(edges, { source: String(v.node), sourceHandle: outHandle(out), target: id, targetHandle: inHandle(name) }, edgeTypeOf(opIndex.get(String(v.node))!, out, schemas));
    }
  }
  for (const e of edges) if (!e.data?.type) {
    const src = resolveSource(e.source, e.sourceHandle, nodes, edges);
    const n = src ? opIndex.get(src.node) : undefined;
    if (n && src) e.data = { type: edgeTypeOf(n, src.output, schemas) };
  }

  for (const note of Array.isArray(ui.notes) ? (ui.notes as NoteDoc[]) : []) {
    const size = Array.isArray(note.size) ? { width: Number(note.size[0]) || 400, height: Number(note.size[1]) || 160 } : undefined;
    const n = newNote(String(note.id), asXY(note.pos) ?? { x: 0, y: 0 }, String(note.text ?? ""), String(note.type || "Note"), size);
    for (const k of ["title", "color", "bgcolor"] as const) if (typeof note[k] === "string") n.data[k] = note[k];
    nodes.push(n);
  }

  const groups = Array.isArray(ui.groups) ? (ui.groups as GroupDoc[]) : [];
  groups.forEach((gr, k) => {
    const b = gr.bounding ?? [0, 0, 400, 300];
    nodes.unshift(newGroup(`g${k + 1}`, gr.title ?? "Group", b[0], b[1], b[2], b[3], gr.color));
  });

  if (unplaced.length) layout(nodes, edges, new Set(unplaced), schemas);
  const vp = ui.viewport as LoadedGraph["viewport"];
  return { nodes, edges, viewport: vp && typeof vp.zoom === "number" ? vp : undefined, laidOut: unplaced.length > 0, unplaced };
}

function edgeTypeOf(src: GNode<OpData>, output: string, schemas: SchemaMap): string {
  return nodeOutputs(src, schemas).find((o) => o.name === output)?.type ?? "*";
}

/**
 * Left-to-right layered layout (lib/layout.ts) for nodes without positions (API-format imports, examples),
 * with estimated sizes; placed to the right of any nodes that have positions, so nothing overlaps.
 */
export function layout(nodes: GNode[], edges: GEdge[], which: Set<string>, schemas: SchemaMap): void {
  const laid = layoutNodes(nodes, edges, schemas, which);
  const placed = nodes.filter((n) => !which.has(n.id) && !isGroup(n));
  const dx = placed.length ? Math.max(...placed.map((n) => n.position.x + layoutSize(n, schemas).width)) + 120 : 0;
  laid.forEach((n, k) => {
    if (which.has(n.id)) nodes[k].position = { x: n.position.x + dx, y: n.position.y };
  });
}
