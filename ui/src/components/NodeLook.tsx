// How a node's mode, colour, collapse and size show: ComfyUI users expect bypassed nodes tinted
// purple, muted ones greyed out, a collapsed node as its title bar alone.
import { Handle, NodeResizer, Position, useStore as useFlowStore } from "@xyflow/react";
import { OpData, inHandle, outHandle } from "../lib/graph";
import { InputSchema, OutputSchema } from "../lib/schema";
import { commitCurrent } from "../state/editor";

/** Classes and CSS variables for a node's mode and colour. */
export function lookOf(data: OpData): { className: string; style: Record<string, string> } {
  const style: Record<string, string> = {};
  if (data.color) style["--node-title"] = data.color;
  if (data.bgcolor) style["--node-bg"] = data.bgcolor;
  const className = [
    data.mode && `mode-${data.mode}`,
    data.collapsed && "collapsed",
    data.pinned && "pinned",
    (data.color || data.bgcolor) && "coloured",
  ]
    .filter(Boolean)
    .join(" ");
  return { className, style };
}

/** A badge in the title bar saying the node will not run. */
export function ModeBadge({ data }: { data: OpData }) {
  if (!data.mode && !data.pinned) return null;
  return (
    <>
      {data.mode === "bypassed" && <span className="ng-badge ng-badge-bypass" title="Bypassed (Ctrl+B): passes its input through">bypass</span>}
      {data.mode === "muted" && <span className="ng-badge ng-badge-muted" title="Muted (Ctrl+M): does not run">muted</span>}
      {data.pinned && <span className="ng-pin" title="Pinned: cannot be moved or resized" aria-label="pinned">📌</span>}
    </>
  );
}

/** A collapsed node keeps every socket, stacked on its title bar, so its links still draw. */
export function CollapsedHandles({ inputs, outputs }: { inputs: InputSchema[]; outputs: OutputSchema[] }) {
  return (
    <>
      {inputs.map((i) => (
        <Handle key={i.name} type="target" position={Position.Left} id={inHandle(i.name)} className="ng-handle ng-handle-collapsed" />
      ))}
      {outputs.map((o) => (
        <Handle key={o.name} type="source" position={Position.Right} id={outHandle(o.name)} className="ng-handle ng-handle-collapsed" />
      ))}
    </>
  );
}

/** The resize handle of a selected node (not of a pinned or collapsed one); the size is saved in the document. */
/** The resize handles of a selected node. It reads the node's own selection from React Flow's store, so
 * selecting re-renders this small component, not the node body (OpNode skips selection changes). */
export function NodeResize({ id, data }: { id: string; data: OpData }) {
  const selected = useFlowStore((s) => s.nodeLookup.get(id)?.selected ?? false);
  return (
    <NodeResizer
      isVisible={selected && !data.pinned && !data.collapsed}
      minWidth={180}
      minHeight={60}
      color="#5b8def"
      handleClassName="ng-resize-handle"
      lineClassName="ng-resize-line"
      onResizeEnd={() => commitCurrent({ label: "resize node" })}
    />
  );
}
