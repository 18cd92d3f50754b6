// The editor's graph: React Flow nodes and edges, with node data that the pure logic understands.
// Everything here is pure (no DOM, no React) so vitest covers it.
import { SchemaMap, InputSchema, OutputSchema, typesCompatible, isWidgetInput, defaultValue, NodeSchema } from "./schema";

export type SeedControl = "fixed" | "randomize" | "increment" | "decrement";

/** A real node of the workflow (what the server runs). */
export interface OpData {
  [key: string]: unknown;
  kind: "op";
  nodeType: string;
  title?: string;
  /** Widget values (kept while an input is linked, so unlinking restores them). */
  values: Record<string, unknown>;
  /** Widget inputs shown as sockets only ("convert widget to input"). */
  converted?: string[];
  /** control_after_generate setting per seed-like input. */
  controls?: Record<string, SeedControl>;
  /** Output names of an unknown node type, learnt from links, so they round-trip. */
  extraOutputs?: string[];
  /** Extra ui fields from the loaded document, kept as they were. */
  uiExtra?: Record<string, unknown>;
  /** ComfyUI's node modes 2 (never) and 4 (bypass); absent: the node runs. */
  mode?: NodeMode;
  collapsed?: boolean;
  /** A pinned node cannot be moved or resized. */
  pinned?: boolean;
  /** ComfyUI's node colours: title bar and body. */
  color?: string;
  bgcolor?: string;
}

export type NodeMode = "muted" | "bypassed";

/** An editor-only pass-through point on a link. */
export interface RerouteData {
  [key: string]: unknown;
  kind: "reroute";
  /** Set for ComfyUI's reroutes on links (extra.reroutes): its id there, so it is saved back as one. */
  comfyReroute?: number;
}

/** An editor-only titled box; moving it moves the nodes inside. */
export interface GroupData {
  [key: string]: unknown;
  kind: "group";
  title: string;
  color?: string;
}

/** A ComfyUI Note / MarkdownNote: text on the canvas, saved and exported, never run. */
export interface NoteData {
  [key: string]: unknown;
  kind: "note";
  /** ComfyUI's node type: "Note" (plain text) or "MarkdownNote". */
  noteType: string;
  text: string;
  title?: string;
  color?: string;
  bgcolor?: string;
}

export type NodeData = OpData | RerouteData | GroupData | NoteData;

export interface XY {
  x: number;
  y: number;
}

/** Structurally a React Flow Node. */
export interface GNode<D extends NodeData = NodeData> {
  id: string;
  type?: string; // "op" | "reroute" | "group"
  position: XY;
  data: D;
  width?: number;
  height?: number;
  style?: Record<string, unknown>;
  zIndex?: number;
  selected?: boolean;
  dragging?: boolean;
  measured?: { width?: number; height?: number };
  [key: string]: unknown;
}

/** Structurally a React Flow Edge. Handles are "i:<input>" and "o:<output>". */
export interface GEdge {
  id: string;
  source: string;
  sourceHandle?: string | null;
  target: string;
  targetHandle?: string | null;
  selected?: boolean;
  style?: Record<string, unknown>;
  data?: { type?: string; [key: string]: unknown };
  [key: string]: unknown;
}

export interface Graph {
  nodes: GNode[];
  edges: GEdge[];
}

export interface Connection {
  source: string;
  sourceHandle?: string | null;
  target: string;
  targetHandle?: string | null;
}

export const inHandle = (name: string) => `i:${name}`;
export const outHandle = (name: string) => `o:${name}`;
export const REROUTE_IN = inHandle("in");
export const REROUTE_OUT = outHandle("out");

export function handleName(handle: string | null | undefined): string {
  if (!handle) return "";
  return handle.startsWith("i:") || handle.startsWith("o:") ? handle.slice(2) : handle;
}

export const isOp = (n: GNode | undefined): n is GNode<OpData> => n?.data.kind === "op";
export const isReroute = (n: GNode | undefined): n is GNode<RerouteData> => n?.data.kind === "reroute";
export const isGroup = (n: GNode | undefined): n is GNode<GroupData> => n?.data.kind === "group";
export const isNote = (n: GNode | undefined): n is GNode<NoteData> => n?.data.kind === "note";
export const NOTE_TYPES = new Set(["Note", "MarkdownNote"]);

export function edgeId(c: Connection): string {
  return `${c.source}:${handleName(c.sourceHandle)}->${c.target}:${handleName(c.targetHandle)}`;
}

/** The inputs a node shows: its schema's, or for an unknown type, whatever its values and links name. */
export function nodeInputs(node: GNode<OpData>, schemas: SchemaMap, edges?: GEdge[]): InputSchema[] {
  const schema = schemas[node.data.nodeType];
  if (schema) return schema.inputs;
  const names = new Set(Object.keys(node.data.values));
  for (const e of edges ?? []) if (e.target === node.id) names.add(handleName(e.targetHandle));
  return [...names].map((name) => ({ name, type: "*", required: false, widget: name in node.data.values }));
}

export function nodeOutputs(node: GNode<OpData>, schemas: SchemaMap): OutputSchema[] {
  const schema = schemas[node.data.nodeType];
  if (schema) return schema.outputs;
  return (node.data.extraOutputs ?? []).map((name) => ({ name, type: "*" }));
}

type NodeIndex = Map<string, GNode>;
const indexNodes = (nodes: GNode[]): NodeIndex => new Map(nodes.map((n) => [n.id, n]));

/** The edge feeding each target handle, keyed "node\u0000handle" (build once per graph, not per lookup). */
export function incomingIndex(edges: GEdge[]): Map<string, GEdge> {
  const m = new Map<string, GEdge>();
  for (const e of edges) m.set(`${e.target}\u0000${e.targetHandle ?? ""}`, e);
  return m;
}

/**
 * The op output a handle really delivers, following reroutes upstream. null when a reroute chain
 * ends unconnected (or loops).
 */
export function resolveSource(
  nodeId: string,
  handle: string | null | undefined,
  nodes: GNode[] | NodeIndex,
  edges: GEdge[],
  incoming: Map<string, GEdge> = incomingIndex(edges),
): { node: string; output: string } | null {
  const index = nodes instanceof Map ? nodes : indexNodes(nodes);
  const seen = new Set<string>();
  let at = nodeId;
  let h = handle;
  for (;;) {
    const n = index.get(at);
    if (!n) return null;
    if (!isReroute(n)) return { node: at, output: handleName(h) };
    if (seen.has(at)) return null;
    seen.add(at);
    const feed = incoming.get(`${at}\u0000${REROUTE_IN}`);
    if (!feed) return null;
    at = feed.source;
    h = feed.sourceHandle;
  }
}

/** Type carried by an output handle ("*" for an unconnected reroute). */
export function outputType(nodeId: string, handle: string | null | undefined, g: Graph, schemas: SchemaMap): string {
  const src = resolveSource(nodeId, handle, g.nodes, g.edges);
  if (!src) return "*";
  const n = g.nodes.find((x) => x.id === src.node);
  if (!isOp(n)) return "*";
  return nodeOutputs(n, schemas).find((o) => o.name === src.output)?.type ?? "*";
}

/** Types a reroute's output must satisfy downstream (the inputs it feeds, through further reroutes). */
function downstreamTypes(nodeId: string, g: Graph, schemas: SchemaMap, seen = new Set<string>()): string[] {
  if (seen.has(nodeId)) return [];
  seen.add(nodeId);
  const out: string[] = [];
  for (const e of g.edges) {
    if (e.source !== nodeId) continue;
    const t = g.nodes.find((n) => n.id === e.target);
    if (isReroute(t)) out.push(...downstreamTypes(t.id, g, schemas, seen));
    else if (isOp(t)) out.push(inputType(t, e.targetHandle, schemas, g.edges));
  }
  return out;
}

export function inputType(node: GNode, handle: string | null | undefined, schemas: SchemaMap, edges?: GEdge[]): string {
  if (!isOp(node)) return "*";
  const name = handleName(handle);
  return nodeInputs(node, schemas, edges).find((i) => i.name === name)?.type ?? "*";
}

/** Would adding source→target close a cycle? (target already reaches source) */
export function wouldCycle(c: Connection, edges: GEdge[]): boolean {
  if (c.source === c.target) return true;
  const next = new Map<string, string[]>();
  for (const e of edges) {
    if (!next.has(e.source)) next.set(e.source, []);
    next.get(e.source)!.push(e.target);
  }
  const stack = [c.target];
  const seen = new Set<string>();
  while (stack.length) {
    const at = stack.pop()!;
    if (at === c.source) return true;
    if (seen.has(at)) continue;
    seen.add(at);
    stack.push(...(next.get(at) ?? []));
  }
  return false;
}

export interface Verdict {
  ok: boolean;
  reason?: string;
}

/** May this connection be made? The reason says why not, in words a person understands. */
export function checkConnection(c: Connection, g: Graph, schemas: SchemaMap): Verdict {
  const source = g.nodes.find((n) => n.id === c.source);
  const target = g.nodes.find((n) => n.id === c.target);
  if (!source || !target) return { ok: false, reason: "that node no longer exists" };
  if (isGroup(source) || isGroup(target)) return { ok: false, reason: "groups have no sockets" };
  if (!c.sourceHandle?.startsWith("o:") || !c.targetHandle?.startsWith("i:"))
    return { ok: false, reason: "connect an output (right) to an input (left)" };
  if (wouldCycle(c, g.edges)) return { ok: false, reason: "that link would make a cycle" };
  const from = outputType(c.source, c.sourceHandle, g, schemas);
  if (isReroute(target)) {
    // The reroute's other links must keep working with what now flows in.
    const rest = { ...g, edges: g.edges.filter((e) => !(e.target === target.id)) };
    for (const t of downstreamTypes(target.id, rest, schemas)) {
      if (!typesCompatible(from, t)) return { ok: false, reason: `${from} cannot feed ${t} through this reroute` };
    }
    return { ok: true };
  }
  const to = inputType(target, c.targetHandle, schemas, g.edges);
  if (!typesCompatible(from, to)) {
    const label = handleName(c.targetHandle);
    return { ok: false, reason: `${from} cannot connect to ${label} (${to})` };
  }
  return { ok: true };
}

/** Add a link; an input holds one link, so any previous link into it is replaced. */
export function connect(edges: GEdge[], c: Connection, type?: string): GEdge[] {
  const kept = edges.filter((e) => !(e.target === c.target && e.targetHandle === c.targetHandle));
  const edge: GEdge = {
    id: edgeId(c),
    type: "typed",
    source: c.source,
    sourceHandle: c.sourceHandle ?? null,
    target: c.target,
    targetHandle: c.targetHandle ?? null,
    ...(type ? { data: { type } } : {}),
  };
  return [...kept, edge];
}

/** Remove nodes and every link touching them, in one step (so one undo brings both back). */
export function removeNodes(g: Graph, ids: Iterable<string>): Graph {
  const gone = new Set(ids);
  return {
    nodes: g.nodes.filter((n) => !gone.has(n.id)),
    edges: g.edges.filter((e) => !gone.has(e.source) && !gone.has(e.target)),
  };
}

/** Next free numeric id for op nodes (server ids are strings of integers, as ComfyUI's). */
export function nextId(nodes: GNode[], prefix = ""): string {
  let max = 0;
  for (const n of nodes) {
    const rest = prefix ? (n.id.startsWith(prefix) ? n.id.slice(prefix.length) : "") : n.id;
    if (/^\d+$/.test(rest)) max = Math.max(max, Number(rest));
  }
  return `${prefix}${max + 1}`;
}

export function newOpNode(schema: NodeSchema, id: string, position: XY, randomizeSeeds = true): GNode<OpData> {
  const values: Record<string, unknown> = {};
  const controls: Record<string, SeedControl> = {};
  for (const inp of schema.inputs) {
    if (!isWidgetInput(inp)) continue;
    values[inp.name] = defaultValue(inp);
    if (inp.control_after_generate) controls[inp.name] = randomizeSeeds ? "randomize" : "fixed";
  }
  const data: OpData = { kind: "op", nodeType: schema.name, values };
  if (Object.keys(controls).length) data.controls = controls;
  return { id, type: "op", position, data };
}

export function newReroute(id: string, position: XY): GNode<RerouteData> {
  return { id, type: "reroute", position, data: { kind: "reroute" } };
}

export function newNote(id: string, position: XY, text = "", noteType = "Note", size = { width: 400, height: 160 }): GNode<NoteData> {
  return {
    id, type: "note", position, data: { kind: "note", noteType, text },
    width: size.width, height: size.height, style: { width: size.width, height: size.height },
  };
}

export function newGroup(id: string, title: string, x: number, y: number, w: number, h: number, color?: string): GNode<GroupData> {
  return {
    id,
    type: "group",
    position: { x, y },
    data: { kind: "group", title, ...(color ? { color } : {}) },
    width: w,
    height: h,
    style: { width: w, height: h },
    zIndex: -1,
  };
}

export function nodeSize(n: GNode): { width: number; height: number } {
  return {
    width: n.measured?.width ?? n.width ?? (isReroute(n) ? 16 : 240),
    height: n.measured?.height ?? n.height ?? (isReroute(n) ? 16 : 120),
  };
}

/** Ids of the non-group nodes lying wholly inside a group's box. */
export function nodesInGroup(group: GNode, nodes: GNode[]): string[] {
  const { width, height } = nodeSize(group);
  const x0 = group.position.x;
  const y0 = group.position.y;
  return nodes
    .filter((n) => {
      if (n.id === group.id || isGroup(n)) return false;
      const s = nodeSize(n);
      return n.position.x >= x0 && n.position.y >= y0 && n.position.x + s.width <= x0 + width && n.position.y + s.height <= y0 + height;
    })
    .map((n) => n.id);
}

/** A box around some nodes, with room for a group title. */
export function boundsOf(nodes: GNode[], pad = 24): { x: number; y: number; width: number; height: number } {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const n of nodes) {
    const s = nodeSize(n);
    x0 = Math.min(x0, n.position.x);
    y0 = Math.min(y0, n.position.y);
    x1 = Math.max(x1, n.position.x + s.width);
    y1 = Math.max(y1, n.position.y + s.height);
  }
  if (!Number.isFinite(x0)) return { x: 0, y: 0, width: 400, height: 300 };
  return { x: x0 - pad, y: y0 - pad - 28, width: x1 - x0 + 2 * pad, height: y1 - y0 + 2 * pad + 28 };
}

/** What Ctrl+C keeps: the selected nodes and the links among them. */
export interface Clipboard {
  nodes: GNode[];
  edges: GEdge[];
}

export function copySelection(g: Graph, ids: Iterable<string>): Clipboard {
  const keep = new Set(ids);
  const strip = ({ selected, dragging, ...rest }: GNode) => rest as GNode;
  return {
    nodes: g.nodes.filter((n) => keep.has(n.id)).map(strip),
    edges: g.edges.filter((e) => keep.has(e.source) && keep.has(e.target)).map(({ selected, ...e }) => e as GEdge),
  };
}

/** Paste a clipboard with fresh ids, offset so that its top-left lands at `at`; the pasted nodes become the selection. */
export function paste(g: Graph, clip: Clipboard, at: XY): { graph: Graph; ids: string[] } {
  if (!clip.nodes.length) return { graph: g, ids: [] };
  const minX = Math.min(...clip.nodes.map((n) => n.position.x));
  const minY = Math.min(...clip.nodes.map((n) => n.position.y));
  const rename = new Map<string, string>();
  const nodes = g.nodes.map((n) => (n.selected ? { ...n, selected: false } : n));
  const created: GNode[] = [];
  for (const n of clip.nodes) {
    const all = [...nodes, ...created];
    const id = isOp(n) ? nextId(all) : nextId(all, isReroute(n) ? "r" : isNote(n) ? "n" : "g");
    rename.set(n.id, id);
    created.push({
      ...structuredClone(n),
      id,
      position: { x: n.position.x - minX + at.x, y: n.position.y - minY + at.y },
      selected: true,
    });
  }
  const edges = g.edges.map((e) => (e.selected ? { ...e, selected: false } : e));
  let out = edges;
  for (const e of clip.edges) {
    const c = { source: rename.get(e.source)!, sourceHandle: e.sourceHandle, target: rename.get(e.target)!, targetHandle: e.targetHandle };
    out = connect(out, c, e.data?.type);
  }
  return { graph: { nodes: [...nodes, ...created], edges: out }, ids: created.map((n) => n.id) };
}

/**
 * Everything that would make a graph inconsistent: links to missing nodes or sockets, two links into
 * one input, reroute chains that loop. Empty for a healthy graph (the undo tests check this after
 * every step).
 */
export function integrityProblems(g: Graph, schemas: SchemaMap): string[] {
  const problems: string[] = [];
  const index = indexNodes(g.nodes);
  if (index.size !== g.nodes.length) problems.push("duplicate node ids");
  const seenTargets = new Set<string>();
  const seenIds = new Set<string>();
  for (const e of g.edges) {
    if (seenIds.has(e.id)) problems.push(`duplicate link id ${e.id}`);
    seenIds.add(e.id);
    const s = index.get(e.source);
    const t = index.get(e.target);
    if (!s) problems.push(`link ${e.id} comes from missing node ${e.source}`);
    if (!t) problems.push(`link ${e.id} goes to missing node ${e.target}`);
    const key = `${e.target}\u0000${e.targetHandle}`;
    if (seenTargets.has(key)) problems.push(`input ${e.targetHandle} of node ${e.target} has two links`);
    seenTargets.add(key);
    if (!s || !t) continue;
    if (isOp(s) && schemas[s.data.nodeType] && !nodeOutputs(s, schemas).some((o) => outHandle(o.name) === e.sourceHandle))
      problems.push(`link ${e.id} leaves from unknown output ${e.sourceHandle}`);
    if (isOp(t) && schemas[t.data.nodeType] && !nodeInputs(t, schemas).some((i) => inHandle(i.name) === e.targetHandle))
      problems.push(`link ${e.id} enters unknown input ${e.targetHandle}`);
    if (isReroute(s) && e.sourceHandle !== REROUTE_OUT) problems.push(`link ${e.id} leaves a reroute by ${e.sourceHandle}`);
    if (isReroute(t) && e.targetHandle !== REROUTE_IN) problems.push(`link ${e.id} enters a reroute by ${e.targetHandle}`);
  }
  return problems;
}
