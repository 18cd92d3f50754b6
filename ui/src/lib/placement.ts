// Where a new node lands: centred on the point asked for (the cursor, a dropped link's end), moved
// just enough to lie wholly inside the visible canvas, so it never lands under the side panel or
// off the edge. Sizes are estimates (the node is not drawn yet); the margin absorbs the error.
import { NodeSchema, isWidgetInput } from "./schema";
import type { XY } from "./graph";

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

export function estimateSize(schema: NodeSchema): { width: number; height: number } {
  const wide = schema.inputs.some((i) => i.multiline) || schema.output_node;
  const links = schema.inputs.filter((i) => !isWidgetInput(i)).length;
  const widgets = schema.inputs.filter(isWidgetInput);
  const height = 44 + 22 * Math.max(links, schema.outputs.length) + 28 * widgets.length + 60 * widgets.filter((w) => w.multiline).length + (schema.output_node ? 140 : 0);
  return { width: wide ? 300 : 244, height };
}

/** The top-left corner for a node of `size` centred at `at`, kept inside `view` (flow coordinates). */
export function placeCentred(at: XY, size: { width: number; height: number }, view?: Rect, margin = 12): XY {
  let x = at.x - size.width / 2;
  let y = at.y - size.height / 2;
  if (view) {
    x = Math.min(x, view.x + view.width - size.width - margin);
    y = Math.min(y, view.y + view.height - size.height - margin);
    x = Math.max(x, view.x + margin);
    y = Math.max(y, view.y + margin);
  }
  return { x: Math.round(x), y: Math.round(y) };
}
