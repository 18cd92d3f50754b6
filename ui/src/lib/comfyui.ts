// ComfyUI's UI (litegraph) format in the editor, both ways. Export writes what ComfyUI's frontend
// opens as is (schema 0.4: nodes with id/type/pos/size/flags/order/mode/inputs/outputs/properties/
// widgets_values, a `links` array, groups, extra.ds). Import keeps what the editor can show as it is
// (notes, reroutes, seed controls, groups, the view); documents with subgraphs, primitive nodes or
// bypassed/muted nodes go to the server's converter (nodegraph/formats/comfy_ui.py), which resolves them.
// The facts (widget order, the control value after a seed, the upload value after LoadImage's image,
// frontend-only node types) live in comfy.ts, shared with the rest of the editor's ComfyUI code.
import { comfyLookOf, nativeLookOf } from "./comfyLook";
import { CONTROL_VALUES, FRONTEND_ONLY, NOTE_COLORS, REROUTE, UPLOAD_VALUE, comfyName, nativeName } from "./comfy";
import { SeedControl, NOTE_TYPES } from "./graph";
import { InputSchema, NodeSchema, SchemaMap, defaultValue, isWidgetInput } from "./schema";
import { SUBGRAPH_MODULE, SubgraphDef, subgraphSchemas } from "./subgraph";
import { GroupDoc, NativeNode, NativeWorkflow, NoteDoc, RerouteDoc, RerouteLinkDoc, isLink } from "./workflow";

type Pair = [number, number];
export interface UiSlot { name: string; type: string; link?: number | null; links?: number[] | null; slot_index?: number; widget?: { name: string }; [k: string]: unknown }
export interface UiNode {
  id: number; type: string; pos: Pair; size: Pair; flags: Record<string, unknown>; order: number; mode: number;
  inputs: UiSlot[]; outputs: UiSlot[]; properties: Record<string, unknown>; widgets_values?: unknown[] | Record<string, unknown>;
  title?: string; color?: string; bgcolor?: string; [k: string]: unknown;
}
export type UiLink = [number, number, number, number, number, string];
export interface UiDoc {
  id?: string; revision?: number; last_node_id: number; last_link_id: number; nodes: UiNode[]; links: UiLink[];
  groups: { id?: number; title: string; bounding: number[]; color?: string; font_size?: number; flags?: object }[];
  config: Record<string, unknown>; extra: Record<string, unknown>; version: number;
  definitions?: { subgraphs?: unknown[] };
}

const GROUP_COLOR = "#3f789e"; // a new group's colour in ComfyUI's frontend

/** Where ComfyUI keeps a node id that is not a number (ours may be "sampler"), so it comes back. */
export const NATIVE_ID = "nodegraph id";

const widgetsOf = (schema: NodeSchema | undefined): InputSchema[] => (schema ? schema.inputs.filter(isWidgetInput) : []);
const socketsOf = (schema: NodeSchema | undefined): InputSchema[] => (schema ? schema.inputs.filter((i) => !isWidgetInput(i)) : []);
const xy = (v: unknown): Pair | null =>
  Array.isArray(v) && v.length >= 2 ? [Number(v[0]) || 0, Number(v[1]) || 0] : null;

/** A node's widgets_values in ComfyUI's order: each widget's value, "fixed"/"randomize" ... after a
 *  seed-like one, "image" after an upload combo. Linked widgets keep their hidden value. */
export function widgetValues(schema: NodeSchema, entry: NativeNode, controlsAsSaved = false): unknown[] {
  const ui = entry.ui ?? {};
  const hidden = (ui.linked_values ?? {}) as Record<string, unknown>;
  const controls = (ui.controls ?? {}) as Record<string, SeedControl>;
  const out: unknown[] = [];
  // a subgraph node whose promoted widgets are all fed by links shows none: nothing to write
  if (controlsAsSaved && widgetsOf(schema).every((w) => isLink(entry.inputs[w.name]))) return out;
  for (const inp of widgetsOf(schema)) {
    const v = entry.inputs[inp.name];
    out.push(v !== undefined && !isLink(v) ? v : inp.name in hidden ? hidden[inp.name] : defaultValue(inp));
    if (inp.control_after_generate && !(controlsAsSaved && !(inp.name in controls))) out.push(controls[inp.name] ?? "fixed");
    if (inp.display === "image_upload") out.push(UPLOAD_VALUE);
  }
  return out;
}

/** Read widgets_values back: values by widget name, and the seed controls written after seeds. */
export function readWidgetValues(schema: NodeSchema, values: unknown): { values: Record<string, unknown>; controls: Record<string, SeedControl> } {
  const out: Record<string, unknown> = {};
  const controls: Record<string, SeedControl> = {};
  const widgets = widgetsOf(schema);
  if (values && typeof values === "object" && !Array.isArray(values)) {
    for (const w of widgets) if (w.name in values) out[w.name] = (values as Record<string, unknown>)[w.name];
    return { values: out, controls };
  }
  if (!Array.isArray(values)) return { values: out, controls };
  let k = 0;
  for (const w of widgets) {
    if (k >= values.length) break;
    out[w.name] = values[k++];
    if (w.control_after_generate && CONTROL_VALUES.includes(values[k] as string)) controls[w.name] = values[k++] as SeedControl;
    if (w.display === "image_upload" && values[k] === UPLOAD_VALUE) k++;
  }
  return { values: out, controls };
}

function estimateSize(schema: NodeSchema | undefined): Pair {
  if (!schema) return [240, 100];
  const widgets = widgetsOf(schema);
  const rows = Math.max(socketsOf(schema).length, schema.outputs.length);
  return [315, 30 + 22 * rows + 26 * widgets.length + 60 * widgets.filter((w) => w.multiline).length];
}

/** Native workflow → ComfyUI UI document (what Export → ComfyUI workflow writes). */
export function toComfyUI(doc: NativeWorkflow, given: SchemaMap, opts: { id?: string } = {}): UiDoc {
  const ui = doc.ui ?? {};
  const defs = Array.isArray(ui.subgraphs) ? (ui.subgraphs as SubgraphDef[]) : [];
  const schemas = defs.length ? { ...given, ...subgraphSchemas(defs, given) } : given;
  const notes = Array.isArray(ui.notes) ? (ui.notes as NoteDoc[]) : [];
  const allReroutes = Array.isArray(ui.reroutes) ? (ui.reroutes as RerouteDoc[]) : [];
  // ComfyUI's reroutes on links are written to extra.reroutes, the others as Reroute nodes
  const reroutes = allReroutes.filter((r) => typeof r.comfy_reroute !== "number");
  const onLinks = allReroutes.filter((r) => typeof r.comfy_reroute === "number");
  const rlinks = Array.isArray(ui.reroute_links) ? (ui.reroute_links as RerouteLinkDoc[]) : [];

  // ids: numeric ids stay, the others get the next free numbers (and are remembered in properties)
  const allIds = [...Object.keys(doc.nodes), ...reroutes.map((r) => String(r.id)), ...notes.map((n) => String(n.id))];
  let next = Math.max(0, ...allIds.filter((i) => /^\d+$/.test(i)).map(Number)) + 1;
  const num = new Map<string, number>();
  for (const id of allIds) num.set(id, /^\d+$/.test(id) ? Number(id) : next++);
  const idOf = (id: string) => num.get(id)!;

  const nodes: UiNode[] = [];
  const byId = new Map<string, UiNode>();
  const links: UiLink[] = [];
  let linkId = 0;
  const rerouteIds = new Set(allReroutes.map((r) => String(r.id)));
  const onLinkIds = new Set(onLinks.map((r) => String(r.id)));
  const linkParents = new Map<number, string[]>(); // ComfyUI link id → the reroutes on it, origin first
  const outputIndex = (nodeId: string, output: string | number): number => {
    if (rerouteIds.has(nodeId)) return 0;
    if (typeof output === "number") return output;
    const schema = schemas[doc.nodes[nodeId]?.type];
    const k = schema?.outputs.findIndex((o) => o.name === output) ?? -1;
    if (k >= 0) return k;
    const extra = (doc.nodes[nodeId]?.ui?.outputs ?? []) as string[];
    return extra.includes(output) ? extra.indexOf(output) : /^\d+$/.test(output) ? Number(output) : 0;
  };
  const outputType = (nodeId: string, index: number, seen = new Set<string>()): string => {
    if (rerouteIds.has(nodeId)) {
      const feed = rlinks.find((l) => l.target === nodeId);
      if (!feed || seen.has(nodeId)) return "*";
      seen.add(nodeId);
      return outputType(feed.source, outputIndex(feed.source, feed.output), seen);
    }
    return schemas[doc.nodes[nodeId]?.type]?.outputs[index]?.type ?? "*";
  };

  const base = (id: string, type: string, pos: unknown, size: Pair, extra: Record<string, unknown> = {}): UiNode => {
    const n: UiNode = {
      id: idOf(id), type, pos: xy(pos) ?? [0, 0], size, flags: {}, order: nodes.length, mode: 0, inputs: [], outputs: [],
      properties: {}, ...extra,
    };
    if (!/^\d+$/.test(id)) n.properties[NATIVE_ID] = id;
    nodes.push(n);
    byId.set(id, n);
    return n;
  };

  for (const [id, entry] of Object.entries(doc.nodes)) {
    const schema = schemas[entry.type];
    const nui = entry.ui ?? {};
    const n = base(id, comfyName(entry.type), nui.pos, xy(nui.size) ?? estimateSize(schema));
    if (nui.flags && typeof nui.flags === "object") n.flags = { ...(nui.flags as object) };
    if (typeof nui.mode === "number") n.mode = nui.mode;
    // bypass / mute, collapsed / pinned and colours (lib/comfyLook.ts)
    const look = comfyLookOf(entry);
    if (entry.mode || typeof nui.mode !== "number") n.mode = look.mode;
    n.flags = { ...n.flags, ...look.flags };
    if (look.color) n.color = look.color;
    if (look.bgcolor) n.bgcolor = look.bgcolor;
    if (entry.title) n.title = entry.title;
    const isInstance = schema?.module === SUBGRAPH_MODULE;
    n.properties = { ...(isInstance ? {} : { "Node name for S&R": n.type }), ...((nui.properties as object) ?? {}), ...n.properties };
    const converted = new Set(Array.isArray(nui.converted) ? nui.converted.map(String) : []);
    const slots: InputSchema[] = [...socketsOf(schema)];
    for (const w of widgetsOf(schema)) if (isLink(entry.inputs[w.name]) || converted.has(w.name)) slots.push(w);
    if (!schema) for (const [name, v] of Object.entries(entry.inputs)) if (isLink(v)) slots.push({ name, type: "*", required: false, widget: false });
    n.inputs = slots.map((s) => ({ name: s.name, type: s.type, link: null, ...(isWidgetInput(s) ? { widget: { name: s.name } } : {}) }));
    const outs = schema ? schema.outputs : ((nui.outputs ?? []) as string[]).map((name) => ({ name, type: "*" }));
    n.outputs = outs.map((o, k) => ({ name: o.name, type: o.type, links: [], slot_index: k }));
    if (schema) {
      // a subgraph's promoted seed carries its control value only where the file had one (frontends differ)
      const values = widgetValues(schema, entry, schema.module === SUBGRAPH_MODULE);
      if (values.length) n.widgets_values = values; // litegraph writes none for a node without widgets
    } else {
      const literal = Object.entries(entry.inputs).filter(([, v]) => !isLink(v));
      if (literal.length) n.widgets_values = literal.map(([, v]) => v);
    }
  }
  for (const r of reroutes) {
    const n = base(String(r.id), REROUTE, r.pos, [75, 26], { properties: { showOutputText: false, horizontal: false } });
    n.inputs = [{ name: "", type: "*", link: null }];
    n.outputs = [{ name: "", type: "*", links: [], slot_index: 0 }];
  }
  for (const note of notes) {
    const colors = NOTE_COLORS[note.type] ?? NOTE_COLORS.Note;
    const n = base(String(note.id), note.type, note.pos, xy(note.size) ?? [400, 160], { properties: { text: "" }, widgets_values: [note.text ?? ""] });
    n.color = note.color ?? colors.color;
    n.bgcolor = note.bgcolor ?? colors.bgcolor;
    if (note.title) n.title = note.title;
  }

  const addLink = (source: string, sourceSlot: number, target: string, targetName: string, via: string[] = []) => {
    const src = byId.get(source);
    const dst = byId.get(target);
    if (!src || !dst) return;
    const slot = rerouteIds.has(target) ? 0 : dst.inputs.findIndex((s) => s.name === targetName);
    if (slot < 0 || !src.outputs[sourceSlot]) return;
    const type = outputType(source, sourceSlot);
    links.push([++linkId, src.id, sourceSlot, dst.id, slot, type]);
    if (via.length) linkParents.set(linkId, via);
    dst.inputs[slot].link = linkId;
    (src.outputs[sourceSlot].links ??= []).push(linkId);
    if (rerouteIds.has(source)) src.outputs[0].type = type;
  };
  // links into reroutes first (so a reroute's type is known), then into nodes: through a reroute
  // when the document's reroute chain feeds that input, else directly
  /** Where a way into a node starts once the reroutes on links before it are passed (null: a dangling reroute). */
  const upstream = (source: string, output: string) => {
    const via: string[] = [];
    while (onLinkIds.has(source) && !via.includes(source)) {
      via.unshift(source);
      const feed = rlinks.find((l) => l.target === source);
      if (!feed) return null;
      [source, output] = [feed.source, feed.output];
    }
    return { source, slot: outputIndex(source, output), via };
  };
  for (const l of rlinks) {
    if (!rerouteIds.has(l.target) || onLinkIds.has(l.target)) continue;
    const up = upstream(l.source, l.output);
    if (up) addLink(up.source, up.slot, l.target, "", up.via);
  }
  for (const [id, entry] of Object.entries(doc.nodes)) {
    for (const [name, v] of Object.entries(entry.inputs)) {
      if (!isLink(v)) continue;
      const via = rlinks.find((l) => l.target === id && l.input === name && rerouteIds.has(l.source));
      const up = via && upstream(via.source, "out");
      if (up) addLink(up.source, up.slot, id, name, up.via);
      else addLink(String(v.node), outputIndex(String(v.node), v.output), id, name);
    }
  }
  const extraReroutes = linkReroutesOut(onLinks, linkParents);

  const groups = (Array.isArray(ui.groups) ? (ui.groups as GroupDoc[]) : []).map((g, k) => ({
    id: k + 1, title: g.title, bounding: [...g.bounding], color: g.color ?? GROUP_COLOR, font_size: 24, flags: {},
  }));
  const vp = ui.viewport as { x: number; y: number; zoom: number } | undefined;
  const ds = vp && vp.zoom ? { scale: vp.zoom, offset: [vp.x / vp.zoom, vp.y / vp.zoom] } : { scale: 1, offset: [0, 0] };
  const out: UiDoc = {
    ...(opts.id ? { id: opts.id } : {}), revision: 0,
    last_node_id: Math.max(0, ...nodes.map((n) => n.id)), last_link_id: linkId,
    nodes, links, groups, config: {}, extra: { ds, ...extraReroutes }, version: 0.4,
  };
  if (defs.length) out.definitions = { subgraphs: structuredClone(defs) };
  return out;
}

/** extra.reroutes and extra.linkExtensions (ComfyUI 0.4's place for them) from the editor's reroutes on links. */
function linkReroutesOut(onLinks: RerouteDoc[], linkParents: Map<number, string[]>): { reroutes?: UiReroute[]; linkExtensions?: { id: number; parentId: number }[] } {
  if (!onLinks.length) return {};
  // ComfyUI's id where it is still free (a pasted reroute carries its original's), else the next one
  const ids = new Map<string, number>();
  let next = Math.max(0, ...onLinks.map((r) => r.comfy_reroute!)) + 1;
  for (const r of onLinks) ids.set(String(r.id), [...ids.values()].includes(r.comfy_reroute!) ? next++ : r.comfy_reroute!);
  const out = new Map<string, UiReroute>();
  for (const r of onLinks) {
    const [x, y] = xy(r.pos) ?? [0, 0];
    out.set(String(r.id), { id: ids.get(String(r.id))!, pos: [x + REROUTE_HALF, y + REROUTE_HALF], linkIds: [] });
  }
  const linkExtensions: { id: number; parentId: number }[] = [];
  for (const [link, via] of linkParents) {
    via.forEach((rid, k) => {
      const r = out.get(rid)!;
      r.linkIds.push(link);
      if (k > 0 && r.parentId === undefined) r.parentId = ids.get(via[k - 1]);
    });
    linkExtensions.push({ id: link, parentId: ids.get(via[via.length - 1])! });
  }
  const reroutes = [...out.values()].map((r) => {
    const { parentId, ...rest } = r;
    return { id: rest.id, ...(parentId !== undefined ? { parentId } : {}), pos: rest.pos, linkIds: rest.linkIds.sort((a, b) => a - b) };
  });
  return { reroutes, linkExtensions };
}

/** Can the editor take this UI document as it is? (else the server converts it, resolving what it cannot show) */
export function editorCanImport(doc: Record<string, unknown>, schemas: SchemaMap): boolean {
  const defs = (doc.definitions as { subgraphs?: { id?: string }[] } | undefined)?.subgraphs;
  const defIds = new Set((Array.isArray(defs) ? defs : []).map((d) => String(d?.id)));
  if (!Array.isArray(doc.nodes)) return false;
  return (doc.nodes as Partial<UiNode>[]).every((n) => {
    // modes the editor shows: always, never (muted) and bypass; ComfyUI's others go through the server
    if (!n || typeof n.type !== "string" || ![0, 2, 4].includes(n.mode ?? 0)) return false;
    if (n.type === REROUTE || NOTE_TYPES.has(n.type) || defIds.has(n.type)) return true;
    return !FRONTEND_ONLY.has(n.type) && nativeName(n.type, schemas) in schemas;
  });
}

interface LinkRec { origin: string; originSlot: number; target: string; targetSlot: number; parentId?: number }

/** ComfyUI's reroute on a link (frontend ≥ 1.14): a dot links pass through; `parentId` is the dot before it. */
export interface UiReroute { id: number; parentId?: number; pos: Pair; linkIds: number[]; floating?: { slotType: string } }
/** The editor draws a reroute 16 px square from its corner; ComfyUI's pos is the dot's centre. */
const REROUTE_HALF = 8;

/** The reroutes on links and each link's last reroute: 0.4 keeps them in extra (reroutes, linkExtensions), 1.0 at the top. */
function readLinkReroutes(doc: Record<string, unknown>): { reroutes: UiReroute[]; parents: Map<string, number> } {
  const extra = (doc.extra ?? {}) as { reroutes?: unknown; linkExtensions?: unknown };
  const list = Array.isArray(doc.reroutes) ? doc.reroutes : Array.isArray(extra.reroutes) ? extra.reroutes : [];
  const reroutes = (list as UiReroute[]).filter((r) => r && typeof r.id === "number" && xy(r.pos));
  const parents = new Map<string, number>();
  for (const e of Array.isArray(extra.linkExtensions) ? (extra.linkExtensions as { id: unknown; parentId: unknown }[]) : [])
    if (e && typeof e.parentId === "number") parents.set(String(e.id), e.parentId);
  for (const l of Array.isArray(doc.links) ? doc.links : [])
    if (l && typeof l === "object" && !Array.isArray(l) && typeof (l as { parentId?: unknown }).parentId === "number")
      parents.set(String((l as { id: unknown }).id), (l as { parentId: number }).parentId);
  return { reroutes, parents };
}

/** The reroutes a link passes through, from its origin to its target (parentId names the last one). */
function rerouteChain(last: number | undefined, byId: Map<number, UiReroute>): number[] {
  const chain: number[] = [];
  for (let at = last; at !== undefined && byId.has(at) && !chain.includes(at); at = byId.get(at)!.parentId) chain.unshift(at);
  return chain;
}
export const linkRerouteId = (comfyId: number) => `lr${comfyId}`;

function readLinks(raw: unknown): Map<string, LinkRec> {
  const out = new Map<string, LinkRec>();
  for (const l of Array.isArray(raw) ? raw : []) {
    if (Array.isArray(l) && l.length >= 5 && !l.slice(0, 5).includes(null))
      out.set(String(l[0]), { origin: String(l[1]), originSlot: Number(l[2]), target: String(l[3]), targetSlot: Number(l[4]) });
    else if (l && typeof l === "object" && "origin_id" in l) {
      const o = l as Record<string, unknown>;
      out.set(String(o.id), { origin: String(o.origin_id), originSlot: Number(o.origin_slot), target: String(o.target_id), targetSlot: Number(o.target_slot) });
    }
  }
  return out;
}

/** ComfyUI UI document → native workflow that keeps notes, reroutes, seed controls and groups. */
export function fromComfyUI(doc: Record<string, unknown>, given: SchemaMap): NativeWorkflow {
  const raw = (doc.nodes ?? []) as UiNode[];
  const found = (doc.definitions as { subgraphs?: SubgraphDef[] } | undefined)?.subgraphs;
  const defs = Array.isArray(found) ? found : [];
  const schemas = defs.length ? { ...given, ...subgraphSchemas(defs, given) } : given;
  const links = readLinks(doc.links);
  const uiNodes = new Map(raw.map((n) => [String(n.id), n]));
  const nativeId = (id: string) => {
    const p = uiNodes.get(id)?.properties?.[NATIVE_ID];
    return typeof p === "string" && p ? p : id;
  };
  const nodes: Record<string, NativeNode> = {};
  const notes: NoteDoc[] = [];
  const reroutes: RerouteDoc[] = [];
  const rerouteLinks: RerouteLinkDoc[] = [];
  const isReroute = (id: string) => uiNodes.get(id)?.type === REROUTE;
  // reroutes on links become editor reroutes on the link's way, marked so they are saved back as such
  const { reroutes: linkReroutes, parents } = readLinkReroutes(doc);
  const linkRerouteById = new Map(linkReroutes.map((r) => [r.id, r]));
  for (const r of linkReroutes) {
    const [x, y] = xy(r.pos)!;
    reroutes.push({ id: linkRerouteId(r.id), pos: [x - REROUTE_HALF, y - REROUTE_HALF], comfy_reroute: r.id });
  }
  const seenRerouteLinks = new Set<string>();
  /** The editor links for ComfyUI link `linkId` from (source, output) on to (target, input), through its reroutes. */
  const throughLinkReroutes = (linkId: string, source: string, output: string, target: string, input: string): boolean => {
    const chain = rerouteChain(parents.get(linkId), linkRerouteById).map(linkRerouteId);
    if (!chain.length) return false;
    const hops = [[source, output], ...chain.map((c) => [c, "out"])];
    const ends = [...chain.map((c) => [c, "in"]), [target, input]];
    hops.forEach(([s, o], k) => {
      const key = `${s}\u0000${o}\u0000${ends[k][0]}\u0000${ends[k][1]}`;
      if (seenRerouteLinks.has(key)) return; // links sharing a reroute share the hops before it
      seenRerouteLinks.add(key);
      rerouteLinks.push({ source: s, output: o, target: ends[k][0], input: ends[k][1] });
    });
    return true;
  };

  const outputName = (id: string, slot: number): string => {
    const n = uiNodes.get(id);
    return schemas[nativeName(n?.type ?? "", schemas)]?.outputs[slot]?.name ?? n?.outputs?.[slot]?.name ?? String(slot);
  };
  /** The op output a link delivers, through reroutes. */
  const sourceOf = (linkId: unknown, seen = new Set<string>()): { node: string; output: string } | null => {
    const l = linkId == null ? undefined : links.get(String(linkId));
    if (!l || !uiNodes.has(l.origin)) return null;
    if (isReroute(l.origin)) {
      if (seen.has(l.origin)) return null;
      seen.add(l.origin);
      return sourceOf(uiNodes.get(l.origin)!.inputs?.[0]?.link, seen);
    }
    return { node: nativeId(l.origin), output: outputName(l.origin, l.originSlot) };
  };

  for (const n of raw) {
    const id = String(n.id);
    const pos = xy(n.pos) ?? [0, 0];
    if (NOTE_TYPES.has(n.type)) {
      const values = n.widgets_values;
      const text = Array.isArray(values) ? String(values[0] ?? "") : String((n.properties?.text as string) ?? "");
      const note: NoteDoc = { id: nativeId(id), type: n.type, pos, text };
      const size = xy(n.size);
      if (size) note.size = size;
      if (n.title && n.title !== n.type) note.title = n.title;
      const colors = NOTE_COLORS[n.type];
      if (n.color && n.color !== colors?.color) note.color = n.color;
      if (n.bgcolor && n.bgcolor !== colors?.bgcolor) note.bgcolor = n.bgcolor;
      notes.push(note);
      continue;
    }
    if (n.type === REROUTE) {
      reroutes.push({ id: nativeId(id), pos });
      continue;
    }
    const type = nativeName(n.type, schemas);
    const schema = schemas[type];
    const { values, controls } = schema ? readWidgetValues(schema, n.widgets_values) : { values: {}, controls: {} };
    const inputs: Record<string, unknown> = { ...values };
    const hidden: Record<string, unknown> = {};
    for (const slot of n.inputs ?? []) {
      if (slot.link == null) continue;
      const name = slot.widget?.name ?? slot.name;
      const src = sourceOf(slot.link);
      if (!src) continue;
      if (name in values) hidden[name] = values[name];
      inputs[name] = src;
      const l = links.get(String(slot.link));
      const origin = l && (isReroute(l.origin) ? { node: nativeId(l.origin), output: "out" } : src);
      if (l && origin && throughLinkReroutes(String(slot.link), origin.node, origin.output, nativeId(id), name)) continue;
      if (l && isReroute(l.origin)) rerouteLinks.push({ source: nativeId(l.origin), output: "out", target: nativeId(id), input: name });
    }
    const ui: Record<string, unknown> = { pos };
    const size = xy(n.size);
    if (size) ui.size = size;
    const look = nativeLookOf(n);
    Object.assign(ui, look.ui);
    const otherFlags = Object.fromEntries(Object.entries(n.flags ?? {}).filter(([k]) => k !== "collapsed" && k !== "pinned"));
    if (Object.keys(otherFlags).length) ui.flags = otherFlags;
    if (Object.keys(controls).length) ui.controls = controls;
    const props = Object.fromEntries(Object.entries(n.properties ?? {}).filter(([k]) => k !== "Node name for S&R" && k !== NATIVE_ID));
    if (Object.keys(props).length) ui.properties = props; // e.g. cnr_id, ver, proxyWidgets: written back as read
    if (Object.keys(hidden).length) ui.linked_values = hidden;
    const entry: NativeNode = { type, inputs, ui };
    if (look.mode) entry.mode = look.mode;
    if (n.title && n.title !== n.type && n.title !== type && n.title !== schema?.display_name) entry.title = n.title;
    nodes[nativeId(id)] = entry;
  }
  // links into reroutes, kept so the editor draws the reroute chain
  for (const r of raw) {
    if (r.type !== REROUTE) continue;
    const l = links.get(String(r.inputs?.[0]?.link));
    if (!l || !uiNodes.has(l.origin)) continue;
    const source = nativeId(l.origin), output = isReroute(l.origin) ? "out" : outputName(l.origin, l.originSlot);
    if (throughLinkReroutes(String(r.inputs?.[0]?.link), source, output, nativeId(String(r.id)), "in")) continue;
    rerouteLinks.push({ source, output, target: nativeId(String(r.id)), input: "in" });
  }

  const ui: Record<string, unknown> = {};
  const groups = (Array.isArray(doc.groups) ? doc.groups : []) as { title?: string; bounding?: number[]; color?: string }[];
  if (groups.length)
    ui.groups = groups.map((g) => ({
      title: g.title ?? "Group", bounding: (g.bounding ?? [0, 0, 400, 300]).slice(0, 4),
      ...(g.color && g.color !== GROUP_COLOR ? { color: g.color } : {}),
    }));
  if (notes.length) ui.notes = notes;
  if (reroutes.length) {
    ui.reroutes = reroutes;
    ui.reroute_links = rerouteLinks;
  }
  const ds = (doc.extra as { ds?: { scale?: number; offset?: unknown } } | undefined)?.ds;
  const offset = xy(ds?.offset);
  if (ds && typeof ds.scale === "number" && offset) ui.viewport = { x: offset[0] * ds.scale, y: offset[1] * ds.scale, zoom: ds.scale };
  if (defs.length) ui.subgraphs = structuredClone(defs);
  const out: NativeWorkflow = { version: 1, nodes };
  if (Object.keys(ui).length) out.ui = ui;
  return out;
}
