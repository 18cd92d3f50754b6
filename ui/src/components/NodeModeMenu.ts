// The node menu's bypass / mute / collapse / pin / colour entries (ComfyUI's labels and shortcuts);
// they act on the whole selection when the clicked node is part of it.
import { isOp } from "../lib/graph";
import { editor } from "../state/editor";
import { NODE_COLORS, setColor, targetsOf, toggleCollapsed, toggleMode, togglePinned } from "../state/nodeModes";
import type { MenuItem } from "./ContextMenu";

export function modeMenuItems(id: string): MenuItem[] {
  const ids = targetsOf(id);
  const node = editor.get().nodes.find((n) => n.id === id);
  if (!isOp(node)) return [];
  const d = node.data;
  const many = ids.length > 1 ? ` (${ids.length} nodes)` : "";
  return [
    { label: (d.mode === "bypassed" ? "Remove bypass" : "Bypass") + many, hint: "Ctrl+B", onClick: () => toggleMode(ids, "bypassed") },
    { label: (d.mode === "muted" ? "Unmute" : "Mute") + many, hint: "Ctrl+M", onClick: () => toggleMode(ids, "muted") },
    { label: (d.collapsed ? "Expand" : "Collapse") + many, hint: "Alt+C", onClick: () => toggleCollapsed(ids) },
    { label: (d.pinned ? "Unpin" : "Pin") + many, onClick: () => togglePinned(ids) },
    {
      label: "Colour",
      swatches: [
        { name: "no colour", color: "", onClick: () => setColor(ids, null) },
        ...Object.entries(NODE_COLORS).map(([name, c]) => ({ name, color: c.bgcolor, onClick: () => setColor(ids, name) })),
      ],
    },
  ];
}
