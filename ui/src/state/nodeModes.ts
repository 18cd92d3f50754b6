// Bypass, mute, collapse, pin and colour of nodes, as ComfyUI's frontend does them: each command
// toggles every target node on its own (Ctrl+B on a mix of bypassed and normal nodes flips each).
import { GNode, NodeMode, OpData, isOp } from "../lib/graph";
import { commit, editor } from "./editor";

/** ComfyUI's node colour options (LGraphCanvas.node_colors): title bar `color`, body `bgcolor`. */
export const NODE_COLORS: Record<string, { color: string; bgcolor: string }> = {
  red: { color: "#322", bgcolor: "#533" },
  brown: { color: "#332922", bgcolor: "#593930" },
  green: { color: "#232", bgcolor: "#353" },
  blue: { color: "#223", bgcolor: "#335" },
  pale_blue: { color: "#2a363b", bgcolor: "#3f5159" },
  cyan: { color: "#233", bgcolor: "#355" },
  purple: { color: "#323", bgcolor: "#535" },
  yellow: { color: "#432", bgcolor: "#653" },
  black: { color: "#222", bgcolor: "#000" },
};

/** The nodes a command acts on: the clicked node's whole selection when it is part of one, else it alone. */
export function targetsOf(id?: string): string[] {
  const nodes = editor.get().nodes;
  const selected = nodes.filter((n) => n.selected && isOp(n)).map((n) => n.id);
  if (id === undefined) return selected;
  return selected.includes(id) ? selected : [id];
}

function update(ids: string[], label: string, f: (n: GNode<OpData>) => GNode<OpData>) {
  if (!ids.length) return;
  const want = new Set(ids);
  const s = editor.get();
  commit({ nodes: s.nodes.map((n) => (want.has(n.id) && isOp(n) ? f(n) : n)), edges: s.edges }, { label });
}

const withData = (n: GNode<OpData>, patch: Partial<OpData>): GNode<OpData> => {
  const data = { ...n.data, ...patch };
  for (const k of Object.keys(patch) as (keyof OpData)[]) if (data[k] === undefined || data[k] === false) delete data[k];
  return { ...n, data };
};

export function toggleMode(ids: string[], mode: NodeMode) {
  update(ids, mode === "bypassed" ? "bypass" : "mute", (n) => withData(n, { mode: n.data.mode === mode ? undefined : mode }));
}

export function toggleCollapsed(ids: string[]) {
  update(ids, "collapse", (n) => withData(n, { collapsed: !n.data.collapsed }));
}

export function togglePinned(ids: string[]) {
  update(ids, "pin", (n) => ({ ...withData(n, { pinned: !n.data.pinned }), draggable: n.data.pinned ? undefined : false }));
}

/** A colour option's name, or null for no colour. */
export function setColor(ids: string[], option: string | null) {
  const c = option ? NODE_COLORS[option] : undefined;
  update(ids, "colour", (n) => withData(n, { color: c?.color, bgcolor: c?.bgcolor }));
}

/** ComfyUI's shortcuts: Ctrl+B bypass, Ctrl+M mute, Alt+C collapse; true when the key was one of them. */
export function handleModeKey(e: KeyboardEvent): boolean {
  const mod = e.ctrlKey || e.metaKey;
  const code = e.code; // Alt+C types "ç" on a Mac, so match the physical key
  let act: ((ids: string[]) => void) | null = null;
  if (mod && !e.altKey && code === "KeyB") act = (ids) => toggleMode(ids, "bypassed");
  else if (mod && !e.altKey && code === "KeyM") act = (ids) => toggleMode(ids, "muted");
  else if (e.altKey && !mod && code === "KeyC") act = toggleCollapsed;
  if (!act) return false;
  e.preventDefault();
  act(targetsOf());
  return true;
}
