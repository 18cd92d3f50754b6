// The graph being edited, its undo log, and every action that changes it.
import { applyEdgeChanges, applyNodeChanges, type EdgeChange, type NodeChange, type Node, type Edge } from "@xyflow/react";
import { nextControlValue } from "../lib/comfy";
import { createStore } from "./store";
import {
  Clipboard, Connection, GEdge, GNode, Graph, OpData, SeedControl, XY, boundsOf, checkConnection, connect, copySelection,
  handleName, isGroup, isOp, newGroup, newOpNode, newReroute, nextId, nodesInGroup, outputType, paste, removeNodes,
  inHandle, REROUTE_IN, REROUTE_OUT, GroupData,
} from "../lib/graph";
import { UndoLog, UndoOptions } from "../lib/history";
import { applyNewNodeDefaults, learnModelSizes } from "./nodeDefaults";
import { SchemaMap, learnTypeColors } from "../lib/schema";
import { NativeWorkflow, fromNative, toNative } from "../lib/workflow";
import { layoutWhenMeasured } from "./autolayout";

export interface EditorState {
  nodes: GNode[];
  edges: GEdge[];
  schemas: SchemaMap;
  schemasLoaded: boolean;
  /** Workflow name shown in the toolbar (and the download's file name). */
  name: string;
  /** Changed since it was last saved or loaded. */
  dirty: boolean;
  /** nodeId → comma-separated names of its linked inputs (derived from edges, for cheap node re-renders). */
  linked: Map<string, string>;
  canUndo: boolean;
  canRedo: boolean;
  /** Bumped when a whole new graph is loaded, so the canvas fits it to view. */
  loadCount: number;
  viewport?: { x: number; y: number; zoom: number };
}

function linkedIndex(edges: GEdge[]): Map<string, string> {
  const m = new Map<string, string[]>();
  for (const e of edges) {
    if (!m.has(e.target)) m.set(e.target, []);
    m.get(e.target)!.push(handleName(e.targetHandle));
  }
  const out = new Map<string, string>();
  for (const [k, v] of m) out.set(k, v.sort().join(","));
  return out;
}

export const editor = createStore<EditorState>({
  nodes: [],
  edges: [],
  schemas: {},
  schemasLoaded: false,
  name: "Untitled",
  dirty: false,
  linked: new Map(),
  canUndo: false,
  canRedo: false,
  loadCount: 0,
});

const graphOf = (s: EditorState = editor.get()): Graph => ({ nodes: s.nodes, edges: s.edges });
let history = new UndoLog<Graph>(graphOf());

/** Put a graph on the canvas (no undo step). */
function show(g: Graph, extra: Partial<EditorState> = {}) {
  const prev = editor.get();
  editor.set({
    nodes: g.nodes,
    edges: g.edges,
    linked: g.edges === prev.edges ? prev.linked : linkedIndex(g.edges),
    canUndo: history.canUndo,
    canRedo: history.canRedo,
    ...extra,
  });
}

/** Apply a user action: show it and record it as one undo step. */
export function commit(g: Graph, opts: UndoOptions = {}) {
  history.commit(g, opts);
  show(g, { dirty: true });
}

/** Record the current graph as an undo step (after React Flow changed it, e.g. a drag). */
export function commitCurrent(opts: UndoOptions = {}) {
  commit(graphOf(), opts);
}

const clearSelection = (g: Graph): Graph => ({
  nodes: g.nodes.map((n) => (n.selected ? { ...n, selected: false } : n)),
  edges: g.edges.map((e) => (e.selected ? { ...e, selected: false } : e)),
});

export function undo() {
  const g = history.undo(graphOf());
  if (g) show(clearSelection(g), { dirty: true });
}

export function redo() {
  const g = history.redo(graphOf());
  if (g) show(clearSelection(g), { dirty: true });
}

// --- React Flow plumbing -------------------------------------------------------------------------

/** Group drags carry their members along: ids and start positions, captured at drag start. */
let groupDrag: Map<string, { start: XY; members: Map<string, XY> }> = new Map();

export function startGroupDrag(dragged: GNode[]) {
  groupDrag = new Map();
  const { nodes } = editor.get();
  const draggedIds = new Set(dragged.map((n) => n.id));
  const byId = new Map(nodes.map((n) => [n.id, n])); // a lookup per member, not a scan (1,000-node drags)
  for (const g of dragged) {
    if (!isGroup(g)) continue;
    const members = new Map<string, XY>();
    for (const id of nodesInGroup(g, nodes)) {
      if (draggedIds.has(id)) continue;
      const n = byId.get(id)!;
      members.set(id, { ...n.position });
    }
    groupDrag.set(g.id, { start: { ...g.position }, members });
  }
}

/** The nodes a group drag carries along (not themselves dragged): the layer drag moves them too. */
export const groupDragMembers = (): string[] => [...groupDrag.values()].flatMap((d) => [...d.members.keys()]);

export function endGroupDrag() {
  groupDrag = new Map();
}

export function onNodesChange(changes: NodeChange[]) {
  const s = editor.get();
  let nodes = applyNodeChanges(changes, s.nodes as Node[]) as GNode[];
  if (groupDrag.size) {
    const moves = new Map<string, XY>();
    for (const c of changes) {
      if (c.type !== "position" || !c.position) continue;
      const drag = groupDrag.get(c.id);
      if (!drag) continue;
      const dx = c.position.x - drag.start.x;
      const dy = c.position.y - drag.start.y;
      for (const [id, p] of drag.members) moves.set(id, { x: p.x + dx, y: p.y + dy });
    }
    if (moves.size) nodes = nodes.map((n) => (moves.has(n.id) ? { ...n, position: moves.get(n.id)! } : n));
  }
  editor.set({ nodes });
}

export function onEdgesChange(changes: EdgeChange[]) {
  const s = editor.get();
  // removals go through deleteSelection/disconnect so that they are undoable; only selection here
  const keep = changes.filter((c) => c.type === "select");
  if (keep.length) editor.set({ edges: applyEdgeChanges(keep, s.edges as Edge[]) as GEdge[] });
}

// --- edits ---------------------------------------------------------------------------------------

export function verdict(c: Connection) {
  const s = editor.get();
  return checkConnection(c, graphOf(s), s.schemas);
}

export function addConnection(c: Connection): boolean {
  const s = editor.get();
  if (!checkConnection(c, graphOf(s), s.schemas).ok) return false;
  const type = outputType(c.source, c.sourceHandle, graphOf(s), s.schemas);
  commit({ nodes: s.nodes, edges: connect(s.edges, c, type) }, { label: "connect" });
  return true;
}

export function removeEdge(id: string) {
  const s = editor.get();
  commit({ nodes: s.nodes, edges: s.edges.filter((e) => e.id !== id) }, { label: "disconnect" });
}

export function addNode(type: string, position: XY, select = true): string | null {
  const s = editor.get();
  const schema = s.schemas[type];
  if (!schema) return null;
  const id = nextId(s.nodes);
  const node = newOpNode(schema, id, position);
  applyNewNodeDefaults(node, s.nodes, s.schemas);
  if (select) node.selected = true;
  const nodes = select ? s.nodes.map((n) => (n.selected ? { ...n, selected: false } : n)) : s.nodes;
  commit({ nodes: [...nodes, node], edges: s.edges }, { label: `add ${type}` });
  return id;
}

export function addReroute(position: XY, splitEdge?: GEdge): string {
  const s = editor.get();
  const id = nextId(s.nodes, "r");
  const node = newReroute(id, position);
  let edges = s.edges;
  if (splitEdge) {
    edges = edges.filter((e) => e.id !== splitEdge.id);
    edges = connect(edges, { source: splitEdge.source, sourceHandle: splitEdge.sourceHandle, target: id, targetHandle: REROUTE_IN }, splitEdge.data?.type);
    edges = connect(edges, { source: id, sourceHandle: REROUTE_OUT, target: splitEdge.target, targetHandle: splitEdge.targetHandle }, splitEdge.data?.type);
  }
  commit({ nodes: [...s.nodes, node], edges }, { label: "add reroute" });
  return id;
}

/** A group around the selected nodes, or an empty one at `at`. */
export function addGroup(at: XY, title = "Group"): string {
  const s = editor.get();
  const selected = s.nodes.filter((n) => n.selected && !isGroup(n));
  const id = nextId(s.nodes, "g");
  const b = selected.length ? boundsOf(selected) : { x: at.x, y: at.y, width: 480, height: 320 };
  const group = newGroup(id, title, b.x, b.y, b.width, b.height);
  // groups are drawn first so they sit behind the nodes
  commit({ nodes: [group, ...s.nodes], edges: s.edges }, { label: "add group" });
  return id;
}

export function updateGroup(id: string, patch: Partial<GroupData>) {
  const s = editor.get();
  commit({ nodes: s.nodes.map((n) => (n.id === id ? { ...n, data: { ...n.data, ...patch } as GroupData } : n)), edges: s.edges });
}

function updateOp(id: string, f: (d: OpData) => OpData, opts: UndoOptions = {}) {
  const s = editor.get();
  commit({ nodes: s.nodes.map((n) => (n.id === id && isOp(n) ? { ...n, data: f(n.data) } : n)), edges: s.edges }, opts);
}

export function setValue(id: string, input: string, value: unknown) {
  updateOp(id, (d) => ({ ...d, values: { ...d.values, [input]: value } }), { coalesceKey: `${id}.${input}`, label: "edit value" });
}

export function setControl(id: string, input: string, control: SeedControl) {
  updateOp(id, (d) => ({ ...d, controls: { ...(d.controls ?? {}), [input]: control } }));
}

export function setTitle(id: string, title: string) {
  updateOp(id, (d) => ({ ...d, title: title.trim() || undefined }));
}

/** Show a widget as a socket only, or back as a widget (which drops any link into it). */
export function toggleConverted(id: string, input: string) {
  const s = editor.get();
  const node = s.nodes.find((n) => n.id === id);
  if (!isOp(node)) return;
  const converted = new Set(node.data.converted ?? []);
  let edges = s.edges;
  if (converted.has(input)) {
    converted.delete(input);
    edges = edges.filter((e) => !(e.target === id && e.targetHandle === inHandle(input)));
  } else converted.add(input);
  const data = { ...node.data, converted: [...converted] };
  if (!data.converted.length) delete (data as Partial<OpData>).converted;
  commit({ nodes: s.nodes.map((n) => (n.id === id ? { ...n, data } : n)), edges }, { label: "convert widget" });
}

export function selectedIds(): string[] {
  return editor.get().nodes.filter((n) => n.selected).map((n) => n.id);
}

export function deleteSelection() {
  const s = editor.get();
  const ids = selectedIds();
  const edgeIds = new Set(s.edges.filter((e) => e.selected).map((e) => e.id));
  if (!ids.length && !edgeIds.size) return;
  const g = removeNodes({ nodes: s.nodes, edges: s.edges.filter((e) => !edgeIds.has(e.id)) }, ids);
  commit(g, { label: "delete" });
}

export function duplicateNode(id: string) {
  const s = editor.get();
  const node = s.nodes.find((n) => n.id === id);
  if (!node) return;
  const { graph } = paste(graphOf(s), copySelection(graphOf(s), [id]), { x: node.position.x + 30, y: node.position.y + 30 });
  commit(graph, { label: "duplicate" });
}

export function selectAll() {
  const s = editor.get();
  editor.set({ nodes: s.nodes.map((n) => (n.selected || isGroup(n) ? n : { ...n, selected: true })) });
}

const CLIP_KEY = "nodegraph:clipboard";
let clipboard: Clipboard | null = null;

export function copy(): number {
  const ids = selectedIds();
  if (!ids.length) return 0;
  clipboard = copySelection(graphOf(), ids);
  try {
    localStorage.setItem(CLIP_KEY, JSON.stringify(clipboard));
  } catch {
    /* storage full or disabled: the in-memory copy still works */
  }
  return ids.length;
}

export function pasteAt(at: XY): number {
  let clip = clipboard;
  if (!clip) {
    try {
      clip = JSON.parse(localStorage.getItem(CLIP_KEY) ?? "null");
    } catch {
      clip = null;
    }
  }
  if (!clip?.nodes.length) return 0;
  const { graph, ids } = paste(graphOf(), clip, at);
  commit(graph, { label: "paste" });
  return ids.length;
}

/** Apply each seed's "control after generate" (after a job has been queued). */
export function applySeedControls() {
  const s = editor.get();
  let changed = false;
  const nodes = s.nodes.map((n) => {
    if (!isOp(n) || !n.data.controls) return n;
    const schema = s.schemas[n.data.nodeType];
    const values = { ...n.data.values };
    let touched = false;
    for (const [name, control] of Object.entries(n.data.controls)) {
      if (control === "fixed" || typeof values[name] !== "number") continue;
      if (s.linked.get(n.id)?.split(",").includes(name)) continue;
      const inp = schema?.inputs.find((i) => i.name === name);
      values[name] = nextControlValue(values[name] as number, control, { min: inp?.min, max: inp?.max ?? Number.MAX_SAFE_INTEGER, step: inp?.step });
      touched = true;
    }
    if (!touched) return n;
    changed = true;
    return { ...n, data: { ...n.data, values } };
  });
  if (changed) commit({ nodes, edges: s.edges }, { coalesceKey: "seed-control", label: "seeds" });
}

// --- documents -----------------------------------------------------------------------------------

/** Extension points for documents of several levels (subgraphs: state/subgraphs.ts): `save` turns the
 *  level on the canvas into the whole document, `beforeLoad` sees a document before it is shown. */
export const levelHooks = {
  save: (doc: NativeWorkflow): NativeWorkflow => doc,
  beforeLoad: (_doc: NativeWorkflow): void => {},
};

export function currentWorkflow(viewport?: { x: number; y: number; zoom: number }): NativeWorkflow {
  const s = editor.get();
  return levelHooks.save(toNative(graphOf(s), s.schemas, viewport ? { viewport } : {}));
}

/** Replace the canvas with a document; one undo step back to what was there. */
export function loadDocument(doc: NativeWorkflow, name: string, opts: { resetHistory?: boolean; dirty?: boolean } = {}) {
  levelHooks.beforeLoad(doc);
  const s = editor.get();
  const g = fromNative(doc, s.schemas);
  if (opts.resetHistory) history.reset({ nodes: g.nodes, edges: g.edges });
  else history.commit({ nodes: g.nodes, edges: g.edges }, { label: "load" });
  show({ nodes: g.nodes, edges: g.edges }, { name, dirty: opts.dirty ?? false, loadCount: s.loadCount + 1, viewport: g.viewport });
  if (g.unplaced?.length) layoutWhenMeasured(g.unplaced);
}

/** The loaded document with new positions (its auto-layout, redone with measured sizes), fitted to view. */
export function relayoutLoaded(nodes: GNode[]) {
  const s = editor.get();
  history.amend({ nodes, edges: s.edges });
  show({ nodes, edges: s.edges }, { loadCount: s.loadCount + 1, viewport: undefined });
}

export function newWorkflow() {
  commit({ nodes: [], edges: [] }, { label: "new" });
  editor.set({ name: "Untitled", dirty: false, loadCount: editor.get().loadCount + 1, viewport: undefined });
}

export function markSaved(name?: string) {
  editor.set({ dirty: false, ...(name ? { name } : {}) });
}

export function setSchemas(schemas: SchemaMap) {
  learnTypeColors(schemas);
  void learnModelSizes(schemas);
  editor.set({ schemas, schemasLoaded: true });
}

// --- workflow tabs: each open document keeps its own graph, undo log, name and dirty marker ----------

export interface OpenDocument {
  graph: Graph;
  history: UndoLog<Graph>;
  name: string;
  dirty: boolean;
  viewport?: { x: number; y: number; zoom: number };
  /** What other modules keep per document (the subgraph definitions and open levels). */
  extra?: unknown;
}

/** Per-document state kept outside this store: taken off with a tab, put back with it. */
export const documentHooks = {
  take: (): unknown => undefined,
  put: (_extra: unknown): void => {},
};

/** A document ready to be put on the canvas next (from a native workflow, or empty). */
export function freshDocument(doc: NativeWorkflow | null, name: string, dirty = false): OpenDocument {
  const native = doc ?? { version: 1, nodes: {} };
  levelHooks.beforeLoad(native);
  const g = fromNative(native, editor.get().schemas);
  const graph = { nodes: g.nodes, edges: g.edges };
  return { graph, history: new UndoLog<Graph>(graph), name, dirty, viewport: g.viewport, extra: documentHooks.take() };
}

/** The document on the canvas, as it is (to be put back later by putDocument). */
export function takeDocument(viewport?: OpenDocument["viewport"]): OpenDocument {
  const s = editor.get();
  return { graph: graphOf(s), history, name: s.name, dirty: s.dirty, viewport, extra: documentHooks.take() };
}

export function putDocument(d: OpenDocument) {
  documentHooks.put(d.extra);
  history = d.history;
  // an empty document starts at the canvas's default view (fitting nothing would fit the first node added)
  const viewport = d.viewport ?? (d.graph.nodes.length ? undefined : { x: 80, y: 60, zoom: 1 });
  show(d.graph, { name: d.name, dirty: d.dirty, viewport, loadCount: editor.get().loadCount + 1 });
}

/** For tests and the perf bench: the current graph. */
export function graph(): Graph {
  return graphOf();
}
