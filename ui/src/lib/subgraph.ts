// Subgraphs, pure: definitions kept in ComfyUI's `definitions.subgraphs` shape (the shape the server
// runs, nodegraph/formats/comfy_graph.py), converting a selection into one, editing one level as a
// native document, and unpacking an instance. Facts from ComfyUI's frontend (litegraph's Subgraph):
// an instance node's type is its definition's id; inside a definition node -10 holds the subgraph's
// inputs and -20 its outputs, and links from -10 / to -20 carry the input / output index as slot.
// In the editor, a level is a native document in which "-10" and "-20" are nodes of the boundary
// types below, whose outputs / inputs are named after the subgraph's inputs / outputs.
import { NATIVE_ID, UiNode, fromComfyUI, toComfyUI } from "./comfyui";
import { InputSchema, NodeSchema, SchemaMap, isWidgetInput } from "./schema";
import { NativeLink, NativeNode, NativeWorkflow, isLink } from "./workflow";

export const INPUT_NODE = "-10";
export const OUTPUT_NODE = "-20";
export const SG_INPUTS = "SubgraphInputs";
export const SG_OUTPUTS = "SubgraphOutputs";
export const SUBGRAPH_MODULE = "subgraph"; // marks the schemas made here, so they can be told from the server's

export interface SubgraphSlot { id?: string; name: string; type: string; linkIds?: number[]; [k: string]: unknown }
export interface LinkObj { id: number; origin_id: number; origin_slot: number; target_id: number; target_slot: number; type: string }
export interface SubgraphDef {
  id: string; name: string; inputs: SubgraphSlot[]; outputs: SubgraphSlot[]; nodes: UiNode[]; links: LinkObj[];
  [k: string]: unknown;
}

export const definitionsOf = (doc: NativeWorkflow): SubgraphDef[] => (Array.isArray(doc.ui?.subgraphs) ? (doc.ui!.subgraphs as SubgraphDef[]) : []);

const schema = (name: string, display: string, inputs: SubgraphSlot[], outputs: SubgraphSlot[]): NodeSchema =>
  ({
    name, display_name: display, category: "subgraph", description: "", output_node: false, version: 1, deterministic: true,
    module: SUBGRAPH_MODULE,
    inputs: inputs.map((i) => ({ name: i.name, type: i.type || "*", required: false, widget: false })),
    outputs: outputs.map((o) => ({ name: o.name, type: o.type || "*" })),
  }) as unknown as NodeSchema;

/** The widget an input of `def` feeds inside it (ComfyUI promotes it onto the instance), else null. */
function promotedSpec(def: SubgraphDef, index: number, known: SchemaMap): InputSchema | null {
  for (const id of def.inputs[index].linkIds ?? []) {
    const link = def.links.find((l) => l.id === id);
    const target = link && def.nodes.find((n) => n.id === link.target_id);
    const slot = target?.inputs?.[link!.target_slot];
    if (!target || !slot) continue;
    const name = slot.widget?.name ?? slot.name;
    const spec = known[target.type]?.inputs.find((i) => i.name === name);
    if (spec && isWidgetInput(spec)) return spec;
  }
  return null;
}

/** A schema per definition, so its instances draw, connect and export like any node. An input that
 *  feeds a widget inside is a widget on the instance too (ComfyUI's promoted widget), with that
 *  widget's type, range and choices; `base`: the node types' schemas. */
export function subgraphSchemas(defs: SubgraphDef[], base: SchemaMap = {}): SchemaMap {
  let out: SchemaMap = {};
  for (let pass = 0; pass < 2; pass++) { // a second pass sees the widgets of subgraphs nested in others
    const known = { ...base, ...out };
    out = Object.fromEntries(defs.map((d) => {
      const s = schema(d.id, d.name || "Subgraph", d.inputs, d.outputs);
      s.inputs = s.inputs.map((inp, k) => {
        const spec = promotedSpec(d, k, known);
        return spec ? { ...spec, name: inp.name, required: false } : inp;
      });
      return [d.id, s];
    }));
  }
  return out;
}

/** The boundary nodes' schemas while `def` is the level being edited. */
export function boundarySchemas(def: SubgraphDef): SchemaMap {
  return { [SG_INPUTS]: schema(SG_INPUTS, "Inputs", [], def.inputs), [SG_OUTPUTS]: schema(SG_OUTPUTS, "Outputs", def.outputs, []) };
}

const slotOf = (def: SubgraphDef) => (ref: string | number, list: SubgraphSlot[]) =>
  typeof ref === "number" ? ref : /^\d+$/.test(ref) && !list.some((s) => s.name === ref) ? Number(ref) : list.findIndex((s) => s.name === ref);

/** One definition as an editable native document, with its boundary nodes "-10" and "-20". */
export function definitionToNative(def: SubgraphDef, schemas: SchemaMap): NativeWorkflow {
  const pos = (n: unknown, fallback: [number, number]) => {
    const b = (n as { bounding?: number[] } | undefined)?.bounding;
    return Array.isArray(b) && b.length >= 2 ? [b[0], b[1], b[2] ?? 140, b[3] ?? 60] : [...fallback, 140, 60];
  };
  const xs = def.nodes.map((n) => n.pos?.[0] ?? 0);
  const ys = def.nodes.map((n) => n.pos?.[1] ?? 0);
  const left = xs.length ? Math.min(...xs) : 0;
  const right = xs.length ? Math.max(...xs) : 0;
  const top = ys.length ? Math.min(...ys) : 0;
  const ib = pos(def.inputNode, [left - 260, top]);
  const ob = pos(def.outputNode, [right + 400, top]);
  const boundary = (id: number, type: string, b: number[]): UiNode => ({
    id, type, pos: [b[0], b[1]], size: [b[2], b[3]], flags: {}, order: 0, mode: 0, inputs: [], outputs: [], properties: {},
  });
  const inNode = boundary(Number(INPUT_NODE), SG_INPUTS, ib);
  inNode.outputs = def.inputs.map((i) => ({ name: i.name, type: i.type, links: [] }));
  const outNode = boundary(Number(OUTPUT_NODE), SG_OUTPUTS, ob);
  outNode.inputs = def.outputs.map((o, k) => ({
    name: o.name, type: o.type, link: def.links.find((l) => String(l.target_id) === OUTPUT_NODE && l.target_slot === k)?.id ?? null,
  }));
  const doc = { nodes: [...def.nodes, inNode, outNode], links: def.links, groups: (def.groups as unknown[]) ?? [] };
  const native = fromComfyUI(doc, { ...schemas, ...boundarySchemas(def) });
  if (native.ui) delete native.ui.viewport;
  // ComfyUI draws its boundary nodes narrow and close; ours are node-wide: move them clear of the
  // nodes on the canvas, remembering where the file had them (written back unless moved)
  const room = (id: string, x: number, clear: number, before: boolean) => {
    const ui = native.nodes[id].ui!;
    const pos = ui.pos as number[];
    if (before ? x > clear : x < clear) {
      ui.pos = [clear, pos[1]];
      ui.file_pos = [pos[0], pos[1], clear];
    }
  };
  const widest = Math.max(0, ...def.nodes.map((n) => n.size?.[0] ?? 315));
  room(INPUT_NODE, ib[0], left - 260, true);
  room(OUTPUT_NODE, ob[0], right + widest + 80, false);
  return native;
}

/** A level edited as a native document (boundary nodes included) back into the definition's shape.
 *  `def` gives the id, name, the inputs/outputs in order (names as they are now) and the keys kept as they were. */
export function nativeToDefinition(level: NativeWorkflow, def: SubgraphDef, schemas: SchemaMap): SubgraphDef {
  const doc = structuredClone(level);
  const inEntry = doc.nodes[INPUT_NODE];
  const outEntry = doc.nodes[OUTPUT_NODE];
  delete doc.nodes[INPUT_NODE];
  delete doc.nodes[OUTPUT_NODE];
  const slot = slotOf(def);
  const inputs = def.inputs.map((i) => ({ ...i, linkIds: [] as number[] }));
  const outputs = def.outputs.map((o) => ({ ...o, linkIds: [] as number[] }));
  const fromInput: { node: string; input: string; k: number }[] = [];
  for (const [id, n] of Object.entries(doc.nodes))
    for (const [name, v] of Object.entries(n.inputs))
      if (isLink(v) && String(v.node) === INPUT_NODE) {
        const k = slot(v.output, inputs);
        if (k >= 0) fromInput.push({ node: id, input: name, k });
        n.inputs[name] = { node: INPUT_NODE, output: k }; // keeps the socket; the link is written below
      }
  const toOutput: { k: number; src: NativeLink }[] = [];
  for (const [name, v] of Object.entries(outEntry?.inputs ?? {}))
    if (isLink(v) && String(v.node) !== INPUT_NODE) toOutput.push({ k: slot(name, outputs), src: v });
  if (doc.ui?.reroute_links)
    doc.ui.reroute_links = (doc.ui.reroute_links as { source: string; target: string }[]).filter((l) => ![INPUT_NODE, OUTPUT_NODE].includes(l.source) && ![INPUT_NODE, OUTPUT_NODE].includes(l.target));

  const ui = toComfyUI(doc, schemas);
  const links: LinkObj[] = ui.links.map(([id, o, os, t, ts, type]) => ({ id, origin_id: o, origin_slot: os, target_id: t, target_slot: ts, type }));
  let last = ui.last_link_id;
  const uiNode = (nid: string) => ui.nodes.find((n) => (n.properties[NATIVE_ID] ?? String(n.id)) === nid);
  for (const f of fromInput) {
    const n = uiNode(f.node);
    const s = n ? n.inputs.findIndex((i) => (i.widget?.name ?? i.name) === f.input) : -1;
    if (!n || s < 0) continue;
    const id = ++last;
    links.push({ id, origin_id: Number(INPUT_NODE), origin_slot: f.k, target_id: n.id, target_slot: s, type: inputs[f.k].type });
    n.inputs[s].link = id;
    inputs[f.k].linkIds.push(id);
  }
  for (const t of toOutput) {
    const n = uiNode(String(t.src.node));
    if (!n || t.k < 0) continue;
    const s = typeof t.src.output === "number" ? t.src.output : n.outputs.findIndex((o) => o.name === t.src.output);
    if (s < 0 || !n.outputs[s]) continue;
    const id = ++last;
    links.push({ id, origin_id: n.id, origin_slot: s, target_id: Number(OUTPUT_NODE), target_slot: t.k, type: outputs[t.k].type });
    (n.outputs[s].links ??= []).push(id);
    outputs[t.k].linkIds.push(id);
  }
  const bounding = (e: NativeNode | undefined, was: unknown, fallback: number[]) => {
    let p = e?.ui?.pos as number[] | undefined;
    const file = e?.ui?.file_pos as number[] | undefined;
    if (p && file && p[0] === file[2] && p[1] === file[1]) p = [file[0], file[1]]; // not moved: where the file had it
    const b = (was as { bounding?: number[] } | undefined)?.bounding;
    return Array.isArray(p) ? [p[0], p[1], b?.[2] ?? 140, b?.[3] ?? 60] : fallback;
  };
  const nodes = keepIdentity(def, ui.nodes, links, inputs, outputs);
  const state = (def.state as Record<string, unknown> | undefined) ?? {};
  return {
    version: 1, revision: 0, config: {}, widgets: [], extra: {}, ...def,
    state: {
      lastGroupId: 0, lastRerouteId: 0, ...state,
      lastNodeId: Math.max(ui.last_node_id, Number(state.lastNodeId) || 0),
      lastLinkId: Math.max(0, Number(state.lastLinkId) || 0, ...links.map((l) => l.id)),
    },
    inputNode: { id: Number(INPUT_NODE), bounding: bounding(inEntry, def.inputNode, [-300, 0, 140, 60]) },
    outputNode: { id: Number(OUTPUT_NODE), bounding: bounding(outEntry, def.outputNode, [600, 0, 140, 60]) },
    inputs, outputs, nodes, links, groups: ui.groups,
  };
}

/** What a definition had and the rebuilt one would lose: a link between the same slots keeps its id,
 *  a node and its slots keep the keys the editor does not write (localized_name ...), so a file from
 *  ComfyUI saves back as it came. Renumbers `links` and the references to them in place. */
function keepIdentity(was: SubgraphDef, nodes: UiNode[], links: LinkObj[], inputs: SubgraphSlot[], outputs: SubgraphSlot[]): UiNode[] {
  const ends = (l: LinkObj) => `${l.origin_id}:${l.origin_slot}>${l.target_id}:${l.target_slot}`;
  const old = new Map((was.links ?? []).map((l) => [ends(l), l.id]));
  let next = Math.max(0, ...(was.links ?? []).map((l) => l.id), ...links.map((l) => l.id));
  const remap = new Map<number, number>();
  for (const l of links) {
    const kept = old.get(ends(l));
    remap.set(l.id, kept ?? ++next);
    if (kept !== undefined) old.delete(ends(l));
  }
  const id = (v: number) => remap.get(v) ?? v;
  for (const l of links) l.id = id(l.id);
  links.sort((a, b) => a.id - b.id);
  for (const s of [...inputs, ...outputs]) s.linkIds = (s.linkIds ?? []).map(id);
  const before = new Map((was.nodes ?? []).map((n) => [n.id, n]));
  return nodes.map((n) => {
    for (const s of n.inputs) if (typeof s.link === "number") s.link = id(s.link);
    for (const s of n.outputs) if (Array.isArray(s.links)) s.links = s.links.map(id);
    const o = before.get(n.id);
    if (!o || o.type !== n.type) return n;
    const merge = <T extends { name: string; [k: string]: unknown }>(mine: T[], theirs: T[] | undefined) =>
      mine.map((slot) => {
        const t = theirs?.find((x) => x.name === slot.name);
        if (!t) return slot;
        const out = { ...t, ...slot };
        if (!("slot_index" in t)) delete out.slot_index;
        return out;
      });
    const out: UiNode = { ...o, ...n, inputs: merge(n.inputs, o.inputs), outputs: merge(n.outputs, o.outputs) };
    for (const k of ["inputs", "outputs"] as const) if (!(k in o) && !out[k].length) delete (out as Partial<UiNode>)[k];
    return out;
  });
}

const uuid = () =>
  globalThis.crypto?.randomUUID?.() ?? "xxxxxxxx-xxxx-4xxx-8xxx-xxxxxxxxxxxx".replace(/x/g, () => ((Math.random() * 16) | 0).toString(16));

function unique(name: string, taken: { name: string }[]): string {
  let out = name || "input";
  for (let k = 2; taken.some((t) => t.name === out); k++) out = `${name}_${k}`;
  return out;
}

const nextNumericId = (nodes: Record<string, unknown>) =>
  String(Math.max(0, ...Object.keys(nodes).filter((k) => /^\d+$/.test(k)).map(Number)) + 1);

/** Convert the nodes `selected` of a level into a subgraph: links that cross the boundary become the
 *  subgraph's inputs (one per outside output) and outputs (one per inside output used outside). */
export function convertToSubgraph(doc: NativeWorkflow, selected: string[], schemas: SchemaMap, name = "New Subgraph"): { doc: NativeWorkflow; def: SubgraphDef; instance: string } {
  const inside = new Set(selected.filter((id) => id in doc.nodes && id !== INPUT_NODE && id !== OUTPUT_NODE));
  if (!inside.size) throw new Error("select the nodes to put in the subgraph first");
  const typeOfInput = (id: string, input: string) => schemas[doc.nodes[id].type]?.inputs.find((i) => i.name === input)?.type ?? "*";
  const typeOfOutput = (src: NativeLink) => {
    const s = schemas[doc.nodes[String(src.node)]?.type];
    return (typeof src.output === "number" ? s?.outputs[src.output] : s?.outputs.find((o) => o.name === src.output))?.type ?? "*";
  };
  const level: NativeWorkflow = { version: 1, nodes: {} };
  const inputs: SubgraphSlot[] = [];
  const outputs: SubgraphSlot[] = [];
  const inputOf = new Map<string, number>();
  const outputOf = new Map<string, number>();
  const outerFeeds: NativeLink[] = [];
  const outFeeds: Record<string, NativeLink> = {};
  for (const id of inside) {
    const n = structuredClone(doc.nodes[id]);
    for (const [input, v] of Object.entries(n.inputs)) {
      if (!isLink(v) || inside.has(String(v.node))) continue;
      const key = `${v.node}\u0000${v.output}`;
      if (!inputOf.has(key)) {
        inputOf.set(key, inputs.length);
        inputs.push({ id: uuid(), name: unique(input, inputs), type: typeOfInput(id, input), linkIds: [] });
        outerFeeds.push(v);
      }
      n.inputs[input] = { node: INPUT_NODE, output: inputs[inputOf.get(key)!].name };
    }
    level.nodes[id] = n;
  }
  const result = structuredClone(doc);
  for (const [id, n] of Object.entries(result.nodes)) {
    if (inside.has(id)) continue;
    for (const [, v] of Object.entries(n.inputs)) {
      if (!isLink(v) || !inside.has(String(v.node))) continue;
      const key = `${v.node}\u0000${v.output}`;
      if (!outputOf.has(key)) {
        outputOf.set(key, outputs.length);
        const out = { id: uuid(), name: unique(String(v.output), outputs), type: typeOfOutput(v), linkIds: [] };
        outputs.push(out);
        outFeeds[out.name] = v;
      }
    }
  }
  const spots = [...inside].map((id) => (doc.nodes[id].ui?.pos as number[] | undefined) ?? [0, 0]);
  const left = Math.min(...spots.map((p) => p[0]));
  const right = Math.max(...spots.map((p) => p[0]));
  const top = Math.min(...spots.map((p) => p[1]));
  level.nodes[INPUT_NODE] = { type: SG_INPUTS, inputs: {}, ui: { pos: [left - 300, top] } };
  level.nodes[OUTPUT_NODE] = { type: SG_OUTPUTS, inputs: outFeeds, ui: { pos: [right + 400, top] } };
  const base: SubgraphDef = { id: uuid(), name, inputs, outputs, nodes: [], links: [] };
  const def = nativeToDefinition(level, base, { ...schemas, ...subgraphSchemas([base], schemas), ...boundarySchemas(base) });

  const instance = nextNumericId(result.nodes);
  for (const id of inside) delete result.nodes[id];
  const feeds: Record<string, unknown> = {};
  inputs.forEach((i, k) => (feeds[i.name] = outerFeeds[k]));
  result.nodes[instance] = { type: def.id, inputs: feeds, ui: { pos: [left, top] } }; // where the selection began: free of the other nodes
  for (const n of Object.values(result.nodes))
    for (const [input, v] of Object.entries(n.inputs))
      if (isLink(v) && inside.has(String(v.node))) n.inputs[input] = { node: instance, output: outputs[outputOf.get(`${v.node}\u0000${v.output}`)!].name };
  if (result.ui?.reroute_links)
    result.ui.reroute_links = (result.ui.reroute_links as { source: string; target: string }[]).filter((l) => !inside.has(l.source) && !inside.has(l.target));
  result.ui = { ...(result.ui ?? {}), subgraphs: [...definitionsOf(doc), def] };
  return { doc: result, def, instance };
}

/** Put an instance's nodes back in its level, wired as the instance was. */
export function unpackSubgraph(doc: NativeWorkflow, instance: string, schemas: SchemaMap): NativeWorkflow {
  const inst = doc.nodes[instance];
  const def = definitionsOf(doc).find((d) => d.id === inst?.type);
  if (!inst || !def) throw new Error(`node ${instance} is not a subgraph`);
  const level = definitionToNative(def, { ...schemas, ...subgraphSchemas(definitionsOf(doc), schemas) });
  const result = structuredClone(doc);
  delete result.nodes[instance];
  const ids = new Map<string, string>();
  for (const id of Object.keys(level.nodes)) {
    if (id === INPUT_NODE || id === OUTPUT_NODE) continue;
    const fresh = nextNumericId({ ...result.nodes, ...Object.fromEntries([...ids.values()].map((v) => [v, 1])) });
    ids.set(id, fresh);
  }
  const spots = [...ids.keys()].map((id) => (level.nodes[id].ui?.pos as number[] | undefined) ?? [0, 0]);
  const at = (inst.ui?.pos as number[] | undefined) ?? [0, 0];
  const dx = at[0] - Math.min(...spots.map((p) => p[0]));
  const dy = at[1] - Math.min(...spots.map((p) => p[1]));
  const fromOutside = (input: string | number): unknown => {
    const name = typeof input === "number" ? def.inputs[input]?.name : input;
    return name === undefined ? undefined : inst.inputs[name];
  };
  // links out of the instance first: one of the unpacked nodes may take the instance's id
  const feeds = level.nodes[OUTPUT_NODE]?.inputs ?? {};
  for (const n of Object.values(result.nodes))
    for (const [input, v] of Object.entries(n.inputs)) {
      if (!isLink(v) || String(v.node) !== instance) continue;
      const name = typeof v.output === "number" ? def.outputs[v.output]?.name : v.output;
      const feed = name === undefined ? undefined : feeds[name];
      if (!isLink(feed)) delete n.inputs[input];
      else if (String(feed.node) === INPUT_NODE) {
        const outer = fromOutside(feed.output);
        if (outer === undefined) delete n.inputs[input];
        else n.inputs[input] = outer;
      } else n.inputs[input] = { node: ids.get(String(feed.node)) ?? String(feed.node), output: feed.output };
    }
  for (const [id, fresh] of ids) {
    const n = structuredClone(level.nodes[id]);
    const hidden = (n.ui?.linked_values ?? {}) as Record<string, unknown>;
    for (const [input, v] of Object.entries(n.inputs)) {
      if (!isLink(v)) continue;
      if (String(v.node) === INPUT_NODE) {
        const outer = fromOutside(v.output);
        if (outer !== undefined) n.inputs[input] = outer;
        else if (input in hidden) n.inputs[input] = hidden[input];
        else delete n.inputs[input];
      } else n.inputs[input] = { node: ids.get(String(v.node)) ?? String(v.node), output: v.output };
    }
    const p = (n.ui?.pos as number[] | undefined) ?? [0, 0];
    n.ui = { ...(n.ui ?? {}), pos: [p[0] + dx, p[1] + dy] };
    result.nodes[fresh] = n;
  }
  if (result.ui?.reroute_links)
    result.ui.reroute_links = (result.ui.reroute_links as { source: string; target: string }[]).filter((l) => l.source !== instance && l.target !== instance);
  const stillUsed = (defId: string) =>
    Object.values(result.nodes).some((n) => n.type === defId) || definitionsOf(doc).some((d) => d.id !== defId && d.nodes.some((n) => n.type === defId));
  if (result.ui) result.ui.subgraphs = definitionsOf(doc).filter((d) => d.id !== def.id || stillUsed(d.id));
  if (result.ui && !(result.ui.subgraphs as unknown[]).length) delete result.ui.subgraphs;
  return result;
}

/** The empty slot at the end of the boundary nodes (ComfyUI's): a link dropped on it adds an input/output. */
export const NEW_SLOT = "+";

/** `def` with a new input or output after the others, named `wanted` (numbered if taken) and typed `type`. */
export function withSlot(def: SubgraphDef, kind: "input" | "output", wanted: string, type: string): { def: SubgraphDef; name: string } {
  const list = kind === "input" ? def.inputs : def.outputs;
  const base = wanted.trim() && wanted !== NEW_SLOT ? wanted.trim() : type.toLowerCase();
  let name = base;
  for (let k = 1; list.some((s) => s.name === name); k++) name = `${base}_${k}`;
  const id = typeof crypto !== "undefined" && typeof crypto.randomUUID === "function" ? crypto.randomUUID() : `${Date.now()}-${list.length}`;
  const slot: SubgraphSlot = { id, name, type: type || "*", linkIds: [] };
  return { def: kind === "input" ? { ...def, inputs: [...def.inputs, slot] } : { ...def, outputs: [...def.outputs, slot] }, name };
}

/** `def` without input/output `index`, its links inside dropped; `parent` (the level holding instances)
 *  loses what fed that input or what that output fed. */
export function withoutSlot(def: SubgraphDef, kind: "input" | "output", index: number, parent: NativeWorkflow): { def: SubgraphDef; parent: NativeWorkflow } {
  const list = kind === "input" ? def.inputs : def.outputs;
  const slot = list[index];
  if (!slot) return { def, parent };
  const boundary = Number(kind === "input" ? INPUT_NODE : OUTPUT_NODE);
  const gone = new Set(def.links.filter((l) => (kind === "input" ? l.origin_id === boundary && l.origin_slot === index : l.target_id === boundary && l.target_slot === index)).map((l) => l.id));
  // links from/to the boundary slots after it move up one slot
  const links = def.links.filter((l) => !gone.has(l.id)).map((l) =>
    kind === "input" && l.origin_id === boundary && l.origin_slot > index ? { ...l, origin_slot: l.origin_slot - 1 }
      : kind === "output" && l.target_id === boundary && l.target_slot > index ? { ...l, target_slot: l.target_slot - 1 } : l);
  const nodes = def.nodes.map((n) => ({
    ...n,
    inputs: (n.inputs ?? []).map((s) => (s.link != null && gone.has(s.link) ? { ...s, link: null } : s)),
    outputs: (n.outputs ?? []).map((s) => (s.links ? { ...s, links: s.links.filter((l) => !gone.has(l)) } : s)),
  }));
  const rest = list.filter((_, k) => k !== index);
  const next = kind === "input" ? { ...def, inputs: rest, links, nodes } : { ...def, outputs: rest, links, nodes };
  const out = structuredClone(parent);
  for (const n of Object.values(out.nodes)) {
    if (kind === "input" && n.type === def.id) delete n.inputs[slot.name];
    if (kind === "output")
      for (const [k, v] of Object.entries(n.inputs))
        if (isLink(v) && out.nodes[String(v.node)]?.type === def.id && v.output === slot.name) delete n.inputs[k];
  }
  return { def: next, parent: out };
}
