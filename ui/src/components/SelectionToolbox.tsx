// ComfyUI's selection toolbox: a small bar over the selected nodes with bypass, mute, collapse, pin
// and colour for all of them at once. Shown for two nodes or more (one node has its right-click menu),
// so it never sits over the canvas after a plain click.
import { NodeToolbar, Position } from "@xyflow/react";
import { isOp } from "../lib/graph";
import { editor } from "../state/editor";
import { NODE_COLORS, setColor, toggleCollapsed, toggleMode, togglePinned } from "../state/nodeModes";
import { useStore } from "../state/store";

export function SelectionToolbox() {
  // a string, so the toolbox re-renders only when the selection changes, not on every move
  const key = useStore(editor, (s) => s.nodes.filter((n) => n.selected && isOp(n) && !n.dragging).map((n) => n.id).join(","));
  const ids = key ? key.split(",") : [];
  if (ids.length < 2) return null;
  return (
    <NodeToolbar nodeId={ids} isVisible position={Position.Top} offset={10} className="ng-toolbox" data-testid="selection-toolbox">
      <button title="Bypass (Ctrl+B)" onClick={() => toggleMode(ids, "bypassed")}>Bypass</button>
      <button title="Mute (Ctrl+M)" onClick={() => toggleMode(ids, "muted")}>Mute</button>
      <button title="Collapse (Alt+C)" onClick={() => toggleCollapsed(ids)}>Collapse</button>
      <button title="Pin" onClick={() => togglePinned(ids)}>Pin</button>
      <span className="ng-toolbox-sep" />
      <button className="ng-swatch none" title="no colour" aria-label="colour no colour" onClick={() => setColor(ids, null)} />
      {Object.entries(NODE_COLORS).map(([name, c]) => (
        <button key={name} className="ng-swatch" style={{ background: c.bgcolor }} title={name} aria-label={`colour ${name}`} onClick={() => setColor(ids, name)} />
      ))}
    </NodeToolbar>
  );
}
