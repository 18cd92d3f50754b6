// Links coloured by the type they carry, and the line drawn while connecting (red when refused).
import { memo } from "react";
import { BaseEdge, getBezierPath, type ConnectionLineComponentProps, type EdgeProps, type Edge } from "@xyflow/react";
import { typeColor } from "../lib/schema";
import { editor } from "../state/editor";
import { outputType } from "../lib/graph";

export const TypedEdge = memo(function TypedEdge({ id, sourceX, sourceY, targetX, targetY, sourcePosition, targetPosition, data, selected }: EdgeProps<Edge<{ type?: string }>>) {
  const [path] = getBezierPath({ sourceX, sourceY, targetX, targetY, sourcePosition, targetPosition });
  const color = typeColor(data?.type ?? "*");
  return (
    <BaseEdge
      id={id}
      path={path}
      interactionWidth={14}
      style={{ stroke: color, strokeWidth: selected ? 3.5 : 2.2, opacity: selected ? 1 : 0.85, filter: selected ? `drop-shadow(0 0 4px ${color})` : undefined }}
    />
  );
});

export function ConnectionLine({ fromX, fromY, toX, toY, fromPosition, toPosition, fromNode, fromHandle, connectionStatus }: ConnectionLineComponentProps) {
  const [path] = getBezierPath({ sourceX: fromX, sourceY: fromY, targetX: toX, targetY: toY, sourcePosition: fromPosition, targetPosition: toPosition });
  const s = editor.get();
  const type = fromHandle?.type === "source" ? outputType(fromNode.id, fromHandle.id, { nodes: s.nodes, edges: s.edges }, s.schemas) : "*";
  const invalid = connectionStatus === "invalid";
  const color = invalid ? "#ff5d5d" : typeColor(type);
  return (
    <g className={invalid ? "ng-connection invalid" : "ng-connection"}>
      <path d={path} fill="none" stroke={color} strokeWidth={2.5} strokeDasharray={invalid ? "6 5" : undefined} />
      <circle cx={toX} cy={toY} r={4} fill={color} />
    </g>
  );
}

export const edgeTypes = { typed: TypedEdge };
