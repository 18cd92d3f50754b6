// Layered left-to-right layout for workflows without positions (API-format imports, examples):
// a column per topological depth (longest path from a source), each column as wide as its widest
// node, nodes in a column stacked top to bottom with a gap. Columns never share x and a column's
// nodes never share y, so no two boxes overlap, whatever the sizes are. Within a column, nodes are
// ordered by where their inputs are (barycentre) and placed level with them where there is room,
// so links run mostly straight. Sizes are the rendered ones where React Flow has measured them.
import { GEdge, GNode, XY, isGroup, isOp } from "./graph";
import { NodeSchema, SchemaMap, isWidgetInput } from "./schema";

export const GAP_X = 90;
export const GAP_Y = 48;
/** Tallest picture a node shows (styles.css: .ng-node-image.single max-height, plus padding). */
export const PICTURE_MAX = 290;

export interface Size {
  width: number;
  height: number;
}

/** Positions for `ids` (others keep theirs); `size` gives each node's box. Pure: returns a map. */
export function layeredLayout(ids: string[], edges: { source: string; target: string }[], size: (id: string) => Size): Map<string, XY> {
  const want = new Set(ids);
  const preds = new Map<string, string[]>();
  for (const e of edges) {
    if (!want.has(e.source) || !want.has(e.target) || e.source === e.target) continue;
    preds.set(e.target, [...(preds.get(e.target) ?? []), e.source]);
  }
  const depth = new Map<string, number>();
  const visiting = new Set<string>();
  const depthOf = (id: string): number => {
    const known = depth.get(id);
    if (known !== undefined) return known;
    if (visiting.has(id)) return 0; // a cycle (invalid anyway): break it here
    visiting.add(id);
    let d = 0;
    for (const p of preds.get(id) ?? []) d = Math.max(d, depthOf(p) + 1);
    visiting.delete(id);
    depth.set(id, d);
    return d;
  };
  const columns: string[][] = [];
  const byId = (a: string, b: string) => Number(a) - Number(b) || a.localeCompare(b);
  for (const id of [...ids].sort(byId)) (columns[depthOf(id)] ??= []).push(id);

  const pos = new Map<string, XY>();
  const centre = (id: string) => pos.get(id)!.y + size(id).height / 2;
  let x = 0;
  for (const col of columns) {
    if (!col) continue;
    // order by the mean centre of the inputs (sources keep id order), then place top to bottom
    const wish = new Map<string, number>();
    for (const id of col) {
      const ps = (preds.get(id) ?? []).filter((p) => pos.has(p));
      if (ps.length) wish.set(id, ps.reduce((s, p) => s + centre(p), 0) / ps.length - size(id).height / 2);
    }
    if (wish.size === col.length) col.sort((a, b) => wish.get(a)! - wish.get(b)! || byId(a, b));
    let y = 0;
    let first = true;
    for (const id of col) {
      const top = first ? Math.max(0, wish.get(id) ?? 0) : Math.max(y, wish.get(id) ?? y);
      pos.set(id, { x, y: top });
      y = top + size(id).height + GAP_Y;
      first = false;
    }
    x += Math.max(...col.map((id) => size(id).width)) + GAP_X;
  }
  return pos;
}

/** A node's box before it has been drawn: the editor's CSS widths and a height from its widgets. */
export function estimatedSize(n: GNode, schemas: SchemaMap): Size {
  if (!isOp(n)) return { width: 16, height: 16 };
  const s = schemas[n.data.nodeType];
  if (!s) return { width: 244, height: 60 + 24 * Object.keys(n.data.values).length };
  const links = s.inputs.filter((i) => !isWidgetInput(i)).length;
  const widgets = s.inputs.filter((i) => isWidgetInput(i));
  const multi = widgets.filter((w) => w.multiline).length;
  const wide = multi > 0 || s.output_node;
  return { width: wide ? 300 : 244, height: 44 + 22 * Math.max(links, s.outputs.length) + 28 * widgets.length + 60 * multi };
}

/** Nodes that show a picture: outputs after a run, LoadImage's preview, a sampler's live preview. */
function showsPicture(schema: NodeSchema): boolean {
  if (schema.output_node || schema.inputs.some((i) => i.display === "image_upload")) return true;
  return (schema.category ?? "").startsWith("sampling") && schema.outputs.some((o) => o.type === "LATENT");
}

/**
 * The box the layout keeps for a node: measured (or estimated), plus room for a picture where the node
 * shows one (showsPicture), so that pictures never grow under the next node.
 */
export function layoutSize(n: GNode, schemas: SchemaMap): Size {
  const est = estimatedSize(n, schemas);
  const width = n.measured?.width ?? est.width;
  let height = n.measured?.height ?? est.height;
  const schema = isOp(n) ? schemas[n.data.nodeType] : undefined;
  if (schema && showsPicture(schema)) height += Math.min(width - 14, PICTURE_MAX);
  return { width, height };
}

/** Lay out the nodes in `which` (all op nodes and reroutes when omitted), in place. */
export function layoutNodes(nodes: GNode[], edges: GEdge[], schemas: SchemaMap, which?: Set<string>): GNode[] {
  const ids = nodes.filter((n) => !isGroup(n) && (!which || which.has(n.id))).map((n) => n.id);
  const index = new Map(nodes.map((n) => [n.id, n]));
  const pos = layeredLayout(ids, edges, (id) => layoutSize(index.get(id)!, schemas));
  return nodes.map((n) => (pos.has(n.id) ? { ...n, position: pos.get(n.id)! } : n));
}

/** Whether any two (non-group) boxes overlap: what the layout promises never happens. */
export function overlaps(boxes: { id: string; x: number; y: number; width: number; height: number }[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < boxes.length; i++)
    for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i], b = boxes[j];
      if (a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height) out.push([a.id, b.id]);
    }
  return out;
}
