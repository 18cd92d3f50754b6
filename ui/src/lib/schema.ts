// Node schemas as served by GET /v1/nodes, socket types, colours and compatibility.
// The schema types are generated from the server's models (nodegraph/server/schemas.py) by
// scripts/gen-types.mjs; the socket colours and the compatibility rule mirror nodegraph/types.py.
import type { components } from "../generated/api";

export type InputSchema = components["schemas"]["NodeInputSchema"];
export type OutputSchema = components["schemas"]["NodeOutputSchema"];
export type NodeSchema = components["schemas"]["NodeSchema"];
export type SchemaMap = Record<string, NodeSchema>;

export const WIDGET_TYPES = new Set(["INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"]);

/** Socket colours of the engine's common types, as nodegraph/types.py defines them. */
export const TYPE_COLORS: Record<string, string> = {
  "*": "#9aa4b1",
  INT: "#7fb069",
  FLOAT: "#a3d977",
  STRING: "#77c3d9",
  BOOLEAN: "#d9b877",
  COMBO: "#b0b0b0",
  IMAGE: "#64b5f6",
  MASK: "#81c784",
  LATENT: "#ff9cf9",
  CONDITIONING: "#ffa931",
  NOISE: "#b0b0b0",
  SIGMAS: "#cdffcd",
  MODEL: "#b39ddb",
  CLIP: "#ffd500",
  VAE: "#ff6e6e",
  CONTROL_NET: "#00d78d",
  UPSCALE_MODEL: "#d4a0ff",
};

/** Colours the server's schemas give sockets: packs declare their own types' colours there. */
const schemaColors: Record<string, string> = {};

export function learnTypeColors(schemas: SchemaMap): void {
  for (const schema of Object.values(schemas)) {
    for (const socket of [...schema.inputs, ...schema.outputs]) {
      if (socket.color && !(socket.type in schemaColors)) schemaColors[socket.type] = socket.color;
    }
  }
}

/** A stable colour for any type name: known types have theirs, other types get a hashed hue. */
export function typeColor(type: string): string {
  const known = schemaColors[type] ?? TYPE_COLORS[type];
  if (known) return known;
  const first = type.split(",")[0].trim();
  const firstKnown = schemaColors[first] ?? TYPE_COLORS[first];
  if (firstKnown) return firstKnown;
  let h = 0;
  for (let i = 0; i < type.length; i++) h = (h * 31 + type.charCodeAt(i)) >>> 0;
  return `hsl(${h % 360} 60% 65%)`;
}

function members(type: string): Set<string> {
  return new Set(type.split(",").map((t) => t.trim()).filter(Boolean));
}

/**
 * May an output of type `output` feed an input of type `input`? Same rule as SocketType.accepts:
 * "*" on either side connects to anything; unions ("IMAGE,MASK") match on any shared member.
 * A COMBO input also takes a STRING link (choices travel as strings), as validation allows.
 */
export function typesCompatible(output: string, input: string): boolean {
  if (output === "*" || input === "*") return true;
  if (input === "COMBO" && (output === "STRING" || output === "COMBO")) return true;
  const a = members(output);
  for (const t of members(input)) if (a.has(t)) return true;
  return false;
}

export function isWidgetInput(inp: InputSchema): boolean {
  return inp.widget ?? (WIDGET_TYPES.has(inp.type) && !inp.force_input);
}

/** The value a fresh widget starts with: the declared default, else a sensible one for its type. */
export function defaultValue(inp: InputSchema): unknown {
  if (inp.default !== undefined) return inp.default;
  switch (inp.type) {
    case "INT":
    case "FLOAT":
      return inp.min !== undefined && inp.min > 0 ? inp.min : 0;
    case "BOOLEAN":
      return false;
    case "COMBO":
      return inp.choices?.[0] ?? "";
    default:
      return "";
  }
}

/** Check one widget value against its schema; a message when it is out of range or not allowed. */
export function checkValue(inp: InputSchema, value: unknown): string | null {
  switch (inp.type) {
    case "INT":
    case "FLOAT": {
      if (typeof value !== "number" || Number.isNaN(value)) return `${inp.name} must be a number`;
      if (inp.type === "INT" && !Number.isInteger(value)) return `${inp.name} must be a whole number`;
      if (inp.min !== undefined && value < inp.min) return `${inp.name} must be at least ${inp.min}`;
      if (inp.max !== undefined && value > inp.max) return `${inp.name} must be at most ${inp.max}`;
      return null;
    }
    case "BOOLEAN":
      return typeof value === "boolean" ? null : `${inp.name} must be true or false`;
    case "COMBO":
      if (inp.choices && inp.choices.length && !inp.choices.includes(String(value)))
        return `${String(value)} is not one of the choices of ${inp.name}`;
      return null;
    default:
      return null;
  }
}

/** Categories as a sorted tree of "a/b/c" paths, for the palette. */
export interface CategoryTree {
  name: string;
  path: string;
  children: CategoryTree[];
  nodes: NodeSchema[];
}

export function categoryTree(schemas: SchemaMap): CategoryTree {
  const root: CategoryTree = { name: "", path: "", children: [], nodes: [] };
  for (const s of Object.values(schemas)) {
    let at = root;
    for (const part of (s.category || "misc").split("/").filter(Boolean)) {
      let next = at.children.find((c) => c.name === part);
      if (!next) {
        next = { name: part, path: at.path ? `${at.path}/${part}` : part, children: [], nodes: [] };
        at.children.push(next);
      }
      at = next;
    }
    at.nodes.push(s);
  }
  const sort = (t: CategoryTree) => {
    // "_for_testing"-style categories go last, as ComfyUI shows them
    t.children.sort((a, b) => Number(a.name.startsWith("_")) - Number(b.name.startsWith("_")) || a.name.localeCompare(b.name));
    t.nodes.sort((a, b) => a.display_name.localeCompare(b.display_name));
    t.children.forEach(sort);
  };
  sort(root);
  return root;
}

/**
 * Search node types by a free query: every word must match the name, display name or category;
 * exact and prefix matches rank first. `wantInput`/`wantOutput` restrict to types with a
 * compatible socket (used when a dragged link is dropped on empty canvas).
 */
export function searchNodes(
  schemas: SchemaMap,
  query: string,
  opts: { wantInput?: string; wantOutput?: string; limit?: number } = {},
): NodeSchema[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  const scored: [number, NodeSchema][] = [];
  for (const s of Object.values(schemas)) {
    if (opts.wantInput && !s.inputs.some((i) => typesCompatible(opts.wantInput!, i.type))) continue;
    if (opts.wantOutput && !s.outputs.some((o) => typesCompatible(o.type, opts.wantOutput!))) continue;
    const name = s.name.toLowerCase();
    const display = s.display_name.toLowerCase();
    const hay = `${name} ${display} ${s.category.toLowerCase()} ${s.description.toLowerCase()}`;
    let score = 0;
    let ok = true;
    for (const w of words) {
      if (name === w || display === w) score += 100;
      else if (name.startsWith(w) || display.startsWith(w)) score += 50;
      else if (name.includes(w) || display.includes(w)) score += 20;
      else if (hay.includes(w)) score += 5;
      else {
        ok = false;
        break;
      }
    }
    if (ok) scored.push([score, s]);
  }
  scored.sort((a, b) => b[0] - a[0] || a[1].display_name.localeCompare(b[1].display_name));
  return scored.slice(0, opts.limit ?? 50).map(([, s]) => s);
}
