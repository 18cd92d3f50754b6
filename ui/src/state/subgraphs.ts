// Subgraphs in the editor: the document's definitions, which level is on the canvas (a stack from the
// root), and the actions: convert the selection (Ctrl+Shift+E, as ComfyUI), enter (double-click),
// exit (breadcrumb, Esc), rename an input or output, unpack. The canvas always shows one level as a
// plain graph; the document is rebuilt from the stack when it is saved (levelHooks.save).
import { Connection, GEdge, GNode, edgeId, handleName, inHandle, isOp, outHandle, outputType } from "../lib/graph";
import { SchemaMap } from "../lib/schema";
import {
  INPUT_NODE, NEW_SLOT, OUTPUT_NODE, SG_INPUTS, SUBGRAPH_MODULE, withSlot, withoutSlot, SubgraphDef, boundarySchemas, convertToSubgraph, definitionToNative, definitionsOf,
  nativeToDefinition, subgraphSchemas, unpackSubgraph,
} from "../lib/subgraph";
import { NativeWorkflow, isLink, toNative } from "../lib/workflow";
import { addConnection, commit, documentHooks, editor, graph, levelHooks, loadDocument } from "./editor";
import { createStore } from "./store";

interface Level {
  defId: string;
  instanceId: string;
  /** The level above as it was when this one was entered (a native document). */
  parent: NativeWorkflow;
}

export const subgraphs = createStore<{ defs: SubgraphDef[]; stack: Level[] }>({ defs: [], stack: [] });

const serverSchemas = (): SchemaMap =>
  Object.fromEntries(Object.entries(editor.get().schemas).filter(([, v]) => (v as { module?: string }).module !== SUBGRAPH_MODULE));

/** The editor's schemas: the server's, one per definition, and the boundary nodes of the level shown. */
function applySchemas() {
  const { defs, stack } = subgraphs.get();
  const base = serverSchemas();
  const top = stack[stack.length - 1];
  const def = top && defs.find((d) => d.id === top.defId);
  const boundary = def ? boundarySchemas(def) : {};
  // the boundary nodes end with ComfyUI's empty slot: a link dropped there adds an input/output
  for (const [k, sch] of Object.entries(boundary))
    boundary[k] = k === SG_INPUTS
      ? { ...sch, outputs: [...sch.outputs, { name: NEW_SLOT, type: "*" }] }
      : { ...sch, inputs: [...sch.inputs, { name: NEW_SLOT, type: "*", required: false, widget: false } as (typeof sch.inputs)[number]] };
  editor.set({ schemas: { ...base, ...subgraphSchemas(defs, base), ...boundary } });
}

let switching = false; // loading a level, not a new document
function show(doc: NativeWorkflow, opts: { resetHistory?: boolean } = {}) {
  const s = editor.get();
  switching = true;
  try {
    loadDocument(doc, s.name, { resetHistory: opts.resetHistory, dirty: true });
  } finally {
    switching = false;
  }
}

const levelDoc = (): NativeWorkflow => toNative(graph(), editor.get().schemas);

/** The whole document: each open level folded back into its definition, up to the root. */
function wholeDocument(shown: NativeWorkflow): NativeWorkflow {
  const { stack } = subgraphs.get();
  let defs = subgraphs.get().defs;
  let doc = shown;
  for (let k = stack.length - 1; k >= 0; k--) {
    const level = stack[k];
    const def = defs.find((d) => d.id === level.defId)!;
    const base = serverSchemas();
    const schemas = { ...base, ...subgraphSchemas(defs, base), ...boundarySchemas(def) };
    const folded = nativeToDefinition(doc, def, schemas);
    defs = defs.map((d) => (d.id === def.id ? folded : d));
    doc = level.parent;
  }
  if (!defs.length) return doc;
  const used = new Set<string>();
  const mark = (types: string[]) => types.forEach((t) => {
    const d = defs.find((x) => x.id === t);
    if (d && !used.has(t)) (used.add(t), mark(d.nodes.map((n) => n.type)));
  });
  mark(Object.values(doc.nodes).map((n) => n.type));
  const kept = defs.filter((d) => used.has(d.id));
  return { ...doc, ui: { ...(doc.ui ?? {}), ...(kept.length ? { subgraphs: kept } : {}) } };
}

// each workflow tab has its own definitions and open levels
documentHooks.take = () => subgraphs.get();
documentHooks.put = (extra) => {
  subgraphs.set((extra as ReturnType<typeof subgraphs.get> | undefined) ?? { defs: [], stack: [] });
  applySchemas();
};
levelHooks.save = (doc) => (subgraphs.get().defs.length || subgraphs.get().stack.length ? wholeDocument(doc) : doc);
levelHooks.beforeLoad = (doc) => {
  if (switching) return;
  subgraphs.set({ defs: definitionsOf(doc), stack: [] });
  applySchemas();
};

export const isSubgraphNode = (n: GNode | undefined): boolean =>
  isOp(n) && subgraphs.get().defs.some((d) => d.id === n.data.nodeType);

/** Ctrl+Shift+E: the selected nodes become one subgraph node. */
export function convertSelection(): string | null {
  const ids = editor.get().nodes.filter((n) => n.selected && isOp(n) && n.id !== INPUT_NODE && n.id !== OUTPUT_NODE).map((n) => n.id);
  if (!ids.length) return null;
  const { doc, def, instance } = convertToSubgraph(levelDoc(), ids, editor.get().schemas);
  subgraphs.set({ defs: [...subgraphs.get().defs, def] });
  applySchemas();
  show({ ...doc, ui: { ...(doc.ui ?? {}), subgraphs: undefined } });
  return instance;
}

/** Double-click on a subgraph node: its inside on the canvas. */
export function enterSubgraph(instanceId: string): boolean {
  const node = editor.get().nodes.find((n) => n.id === instanceId);
  const def = isOp(node) ? subgraphs.get().defs.find((d) => d.id === node.data.nodeType) : undefined;
  if (!def) return false;
  const parent = levelDoc();
  subgraphs.set({ stack: [...subgraphs.get().stack, { defId: def.id, instanceId, parent }] });
  applySchemas();
  show(definitionToNative(def, editor.get().schemas), { resetHistory: true });
  return true;
}

/** Back up to level `depth` (0: the root), keeping what was edited inside. */
export function exitTo(depth: number) {
  const { stack } = subgraphs.get();
  while (subgraphs.get().stack.length > Math.max(0, depth)) {
    const top = subgraphs.get().stack[subgraphs.get().stack.length - 1];
    const def = subgraphs.get().defs.find((d) => d.id === top.defId)!;
    const folded = nativeToDefinition(levelDoc(), def, editor.get().schemas);
    subgraphs.set({ defs: subgraphs.get().defs.map((d) => (d.id === def.id ? folded : d)), stack: subgraphs.get().stack.slice(0, -1) });
    applySchemas();
    show(top.parent, { resetHistory: true });
  }
  return stack.length;
}

/** Unpack a subgraph node: its nodes back in this level, wired as it was. */
export function unpack(instanceId: string) {
  const { defs } = subgraphs.get();
  const doc = levelDoc();
  const flat = unpackSubgraph({ ...doc, ui: { ...(doc.ui ?? {}), subgraphs: defs } }, instanceId, serverSchemas());
  show({ ...flat, ui: { ...(flat.ui ?? {}), subgraphs: undefined } });
}

/** Rename input or output `index` of the subgraph being edited (its links and every instance follow). */
export function renameSlot(kind: "input" | "output", index: number, wanted: string) {
  const { stack, defs } = subgraphs.get();
  const top = stack[stack.length - 1];
  const def = top && defs.find((d) => d.id === top.defId);
  const list = def ? (kind === "input" ? def.inputs : def.outputs) : [];
  const old = list[index]?.name;
  const name = wanted.trim();
  if (!def || old === undefined || !name || name === old || list.some((s) => s.name === name)) return false;
  const renamed = list.map((s, k) => (k === index ? { ...s, name } : s));
  const next = kind === "input" ? { ...def, inputs: renamed } : { ...def, outputs: renamed };
  // the level above: instances' inputs, or the links from their outputs
  const rename = (doc: NativeWorkflow): NativeWorkflow => {
    const out = structuredClone(doc);
    for (const n of Object.values(out.nodes)) {
      if (kind === "input" && n.type === def.id && old in n.inputs) {
        n.inputs[name] = n.inputs[old];
        delete n.inputs[old];
      }
      if (kind === "output")
        for (const [k, v] of Object.entries(n.inputs))
          if (isLink(v) && out.nodes[String(v.node)]?.type === def.id && v.output === old) n.inputs[k] = { node: v.node, output: name };
    }
    return out;
  };
  subgraphs.set({ defs: defs.map((d) => (d.id === def.id ? next : d)), stack: stack.map((l, k) => (k === stack.length - 1 ? { ...l, parent: rename(l.parent) } : l)) });
  applySchemas();
  // this level: the boundary node's handle
  const s = editor.get();
  const boundary = kind === "input" ? INPUT_NODE : OUTPUT_NODE;
  const edges = s.edges.map((e): GEdge => {
    if (kind === "input" && e.source === boundary && handleName(e.sourceHandle) === old) {
      const c = { ...e, sourceHandle: outHandle(name) };
      return { ...c, id: edgeId(c) };
    }
    if (kind === "output" && e.target === boundary && handleName(e.targetHandle) === old) {
      const c = { ...e, targetHandle: inHandle(name) };
      return { ...c, id: edgeId(c) };
    }
    return e;
  });
  commit({ nodes: s.nodes, edges }, { label: "rename subgraph slot" });
  return true;
}

/** A link dropped on a boundary node's empty slot: a new input (named after the inner input it feeds,
 *  typed by it) or output (after the inner output), then the link to it. False for any other link. */
export function addSlotFromLink(c: Connection): boolean {
  const fromInputs = c.source === INPUT_NODE && handleName(c.sourceHandle) === NEW_SLOT;
  const toOutputs = c.target === OUTPUT_NODE && handleName(c.targetHandle) === NEW_SLOT;
  const def = currentDefinition();
  if ((!fromInputs && !toOutputs) || !def) return false;
  const s = editor.get();
  if (fromInputs) {
    const target = s.nodes.find((n) => n.id === c.target);
    const name = handleName(c.targetHandle);
    const type = (isOp(target) && s.schemas[target.data.nodeType]?.inputs.find((i) => i.name === name)?.type) || "*";
    if (name === NEW_SLOT) return true; // boundary to boundary: nothing to add
    const made = withSlot(def, "input", name, type);
    replaceDefinition(made.def);
    addConnection({ ...c, sourceHandle: outHandle(made.name) });
  } else {
    const name = handleName(c.sourceHandle);
    if (name === NEW_SLOT) return true;
    const made = withSlot(def, "output", name, outputType(c.source, c.sourceHandle, graph(), s.schemas));
    replaceDefinition(made.def);
    addConnection({ ...c, targetHandle: inHandle(made.name) });
  }
  return true;
}

/** Remove input or output `index` of the subgraph being edited: its links here and at the instances go. */
export function removeSlot(kind: "input" | "output", index: number): boolean {
  const { stack } = subgraphs.get();
  const top = stack[stack.length - 1];
  const def = currentDefinition();
  const slot = def && (kind === "input" ? def.inputs : def.outputs)[index];
  if (!def || !slot) return false;
  const { def: next, parent } = withoutSlot(def, kind, index, top.parent);
  subgraphs.set({ stack: stack.map((l, k) => (k === stack.length - 1 ? { ...l, parent } : l)) });
  replaceDefinition(next);
  const s = editor.get();
  const edges = s.edges.filter((e) =>
    !(kind === "input" ? e.source === INPUT_NODE && handleName(e.sourceHandle) === slot.name : e.target === OUTPUT_NODE && handleName(e.targetHandle) === slot.name));
  commit({ nodes: s.nodes, edges }, { label: `remove subgraph ${kind}` });
  return true;
}

function replaceDefinition(def: SubgraphDef) {
  subgraphs.set({ defs: subgraphs.get().defs.map((d) => (d.id === def.id ? def : d)) });
  applySchemas();
}

export function currentDefinition(): SubgraphDef | undefined {
  const { stack, defs } = subgraphs.get();
  const top = stack[stack.length - 1];
  return top && defs.find((d) => d.id === top.defId);
}

/** Node menu entries: convert the selection (with this node), open or unpack a subgraph node. */
export function subgraphMenu(nodeId: string): { label: string; hint?: string; onClick: () => void; separator?: boolean }[] {
  const node = editor.get().nodes.find((n) => n.id === nodeId);
  const items: { label: string; hint?: string; onClick: () => void; separator?: boolean }[] = [{
    label: "Convert to subgraph", hint: "Ctrl+Shift+E",
    onClick: () => {
      const s = editor.get();
      if (!node?.selected) editor.set({ nodes: s.nodes.map((n) => (n.id === nodeId ? { ...n, selected: true } : n.selected ? { ...n, selected: false } : n)) });
      convertSelection();
    },
  }];
  if (isSubgraphNode(node)) {
    items.push({ label: "Open subgraph", hint: "double-click", onClick: () => enterSubgraph(nodeId) });
    items.push({ label: "Unpack subgraph", onClick: () => unpack(nodeId) });
  }
  items.push({ label: "", separator: true, onClick: () => {} });
  return items;
}
