// How nodes draw: op nodes (header, sockets, widgets, progress, images, errors), reroutes and groups.
import { memo, useState } from "react";
import { NoteNode } from "./NoteNode";
import { Handle, NodeResizer, Position, type NodeProps, type Node } from "@xyflow/react";
import { GroupData, OpData, RerouteData, REROUTE_IN, REROUTE_OUT, inHandle, outHandle, outputType } from "../lib/graph";
import { InputSchema, OutputSchema, checkValue, isWidgetInput, typeColor } from "../lib/schema";
import { viewUrl } from "../lib/api";
import { editor, setValue, setControl, setTitle, updateGroup, commitCurrent } from "../state/editor";
import { runtime, clearError, NodeRun } from "../state/runtime";
import { subgraphs } from "../state/subgraphs";
import { runKey } from "../lib/runScope";
import { useStore } from "../state/store";
import { SeedControlSelect, Widget } from "./Widgets";
import { extensionFooter } from "../extensions";
import { CollapsedHandles, ModeBadge, NodeResize, lookOf } from "./NodeLook";

const EMPTY_RUN: NodeRun = {};

/** A stable accent colour per top-level category. */
const CATEGORY_COLORS: Record<string, string> = {
  image: "#4f8fd6",
  mask: "#4caf7a",
  latent: "#c66ad1",
  sampling: "#d9824b",
  loaders: "#8f77d1",
  conditioning: "#d1a13b",
  primitives: "#7c8796",
  upscaling: "#b47be0",
  _for_testing: "#777",
};
function categoryColor(category: string | undefined): string {
  const top = (category ?? "").split("/")[0];
  if (CATEGORY_COLORS[top]) return CATEGORY_COLORS[top];
  let h = 0;
  for (const c of top) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `hsl(${h % 360} 45% 55%)`;
}

function Socket({ kind, name, type, error }: { kind: "in" | "out"; name: string; type: string; error?: boolean }) {
  const color = typeColor(type);
  return (
    <div className={`ng-slot ng-slot-${kind} ${error ? "error" : ""}`} title={`${name}: ${type}`}>
      {kind === "in" && <Handle type="target" position={Position.Left} id={inHandle(name)} className="ng-handle" style={{ "--c": color } as React.CSSProperties} />}
      <span className="ng-slot-label">{name.replace(/_/g, " ")}</span>
      {kind === "out" && <Handle type="source" position={Position.Right} id={outHandle(name)} className="ng-handle" style={{ "--c": color } as React.CSSProperties} />}
    </div>
  );
}

function NodeImages({ run, nodeId }: { run: NodeRun; nodeId: string }) {
  const src = run.preview ?? null;
  const images = run.images ?? [];
  if (!src && !images.length) return null;
  if (src)
    return (
      <div className="ng-node-images">
        <img className="ng-node-image single" src={src} alt="live preview" data-testid={`preview-${nodeId}`} draggable={false} />
      </div>
    );
  return (
    <div className={`ng-node-images ${images.length > 1 ? "grid" : ""}`}>
      {images.slice(0, 9).map((img, k) => (
        <img
          key={`${img.filename}-${k}`}
          className={`ng-node-image ${images.length === 1 ? "single" : ""}`}
          src={viewUrl(img)}
          alt={img.filename}
          data-testid={`output-${nodeId}`}
          draggable={false}
          onDoubleClick={() => runtime.set({ lightbox: img })}
        />
      ))}
    </div>
  );
}

function Title({ id, text, onRename }: { id: string; text: string; onRename: (t: string) => void }) {
  const [editing, setEditing] = useState(false);
  if (editing)
    return (
      <input
        className="ng-title-input nodrag"
        autoFocus
        defaultValue={text}
        onBlur={(e) => {
          setEditing(false);
          onRename(e.target.value);
        }}
        onKeyDown={(e) => {
          if (e.key === "Enter") (e.target as HTMLInputElement).blur();
          if (e.key === "Escape") setEditing(false);
        }}
      />
    );
  return (
    <span className="ng-title" onDoubleClick={() => setEditing(true)} title="Double-click to rename" data-node-title={id}>
      {text}
    </span>
  );
}

/** Re-render a node only when what it draws changes: React Flow passes new positionAbsolute/dragging
 * props on every drag frame, and selection is drawn by CSS on React Flow's wrapper (`.selected`), so
 * neither a drag nor Ctrl+A re-renders a 1,000-node graph's node bodies. */
export const sameNodeContent = (a: NodeProps, b: NodeProps) => a.id === b.id && a.data === b.data && a.type === b.type;

export const OpNode = memo(function OpNode({ id, data }: NodeProps<Node<OpData>>) {
  const schema = useStore(editor, (s) => s.schemas[data.nodeType]);
  const linkedStr = useStore(editor, (s) => s.linked.get(id) ?? "");
  // inside a subgraph the server reports this node under the entered instances' ids ("10:5")
  const runId = useStore(subgraphs, (s) => runKey(s.stack.map((l) => l.instanceId), id));
  const run = useStore(runtime, (s) => s.runs[runId] ?? EMPTY_RUN);
  const linked = new Set(linkedStr ? linkedStr.split(",") : []);
  const converted = new Set(data.converted ?? []);

  const inputs: InputSchema[] = schema
    ? schema.inputs
    : Object.keys(data.values).map((name) => ({ name, type: "*", required: false, widget: true })).concat(
        [...linked].filter((n) => !(n in data.values)).map((name) => ({ name, type: "*", required: false, widget: false })),
      );
  const outputs: OutputSchema[] = schema ? schema.outputs : (data.extraOutputs ?? []).map((name) => ({ name, type: "*" }));
  const socketInputs = inputs.filter((i) => !isWidgetInput(i) || converted.has(i.name));
  const widgetInputs = inputs.filter((i) => isWidgetInput(i) && !converted.has(i.name));
  const rows = Math.max(socketInputs.length, outputs.length);
  const errInput = run.error?.input ?? null;
  const errInputs = new Set((run.error?.items ?? []).map((it) => it.input).filter(Boolean));
  const pct = run.progress && run.progress.max > 0 ? Math.round((100 * run.progress.value) / run.progress.max) : null;
  const accent = categoryColor(schema?.category);
  const wide = inputs.some((i) => i.multiline) || schema?.output_node;
  const Footer = extensionFooter(data.nodeType);

  const cls = [
    "ng-node",
    run.status && `status-${run.status}`,
    run.error && "has-error",
    !schema && "unknown",
    wide && "wide",
  ]
    .filter(Boolean)
    .join(" ");
  const look = lookOf(data);

  return (
    <div className={`${cls} ${look.className}`} style={{ "--accent": accent, ...look.style } as React.CSSProperties} data-testid={`node-${id}`} data-node-type={data.nodeType} data-mode={data.mode ?? "always"}>
      <NodeResize id={id} data={data} />
      <div className="ng-node-header">
        <span className="ng-node-dot" />
        <Title id={id} text={data.title || schema?.display_name || data.nodeType} onRename={(t) => setTitle(id, t)} />
        <ModeBadge data={data} />
        {run.status === "cached" && <span className="ng-badge">cached</span>}
        {pct !== null && <span className="ng-badge ng-badge-progress">{pct}%</span>}
        <span className="ng-node-id">#{id}</span>
      </div>
      <div className="ng-progress" data-testid={`progress-${id}`} style={{ opacity: pct === null ? 0 : 1 }}>
        <div style={{ width: `${pct ?? 0}%` }} />
      </div>
      {data.collapsed && <CollapsedHandles inputs={inputs} outputs={outputs} />}
      {!data.collapsed && !schema && <div className="ng-node-warning">Unknown node type “{data.nodeType}”: is its plugin installed?</div>}
      {!data.collapsed && <div className="ng-node-body">
        {Array.from({ length: rows }, (_, k) => {
          const inp = socketInputs[k];
          const out = outputs[k];
          return (
            <div className="ng-slot-row" key={k}>
              {inp ? <Socket kind="in" name={inp.name} type={inp.type} error={errInput === inp.name || errInputs.has(inp.name)} /> : <span />}
              {out ? <Socket kind="out" name={out.name} type={out.type} /> : <span />}
            </div>
          );
        })}
        {widgetInputs.map((inp) => {
          const isLinked = linked.has(inp.name);
          const value = data.values[inp.name];
          const problem = isLinked ? null : checkValue(inp, value);
          const bad = errInput === inp.name || errInputs.has(inp.name) || problem !== null;
          return (
            <div
              className={`ng-widget-row ${isLinked ? "linked" : ""} ${bad ? "error" : ""}`}
              key={inp.name}
              data-input={inp.name}
              title={problem ?? inp.tooltip ?? undefined}
            >
              <Handle type="target" position={Position.Left} id={inHandle(inp.name)} className="ng-handle ng-handle-widget" style={{ "--c": typeColor(inp.type) } as React.CSSProperties} />
              {isLinked ? (
                <div className="ng-linked">
                  <span className="ng-w-label">{inp.name.replace(/_/g, " ")}</span>
                  <span className="ng-linked-tag">linked</span>
                </div>
              ) : (
                <>
                  <Widget
                    nodeId={id}
                    input={inp}
                    value={value}
                    onChange={(v) => {
                      if (errInput === inp.name) clearError(runId);
                      setValue(id, inp.name, v);
                    }}
                  />
                  {inp.control_after_generate && (
                    <SeedControlSelect value={data.controls?.[inp.name] ?? "fixed"} onChange={(c) => setControl(id, inp.name, c)} />
                  )}
                </>
              )}
            </div>
          );
        })}
        <NodeImages run={run} nodeId={id} />
        {Footer && <Footer nodeId={id} nodeType={data.nodeType} values={data.values} />}
      </div>}
      {run.error && (
        <div className="ng-node-error" data-testid={`error-${id}`}>
          {(run.error.items?.length ?? 0) > 1 ? (
            run.error.items!.map((it, k) => (
              <div key={k} className="ng-node-error-item">
                {it.input && <b>{it.input}: </b>}
                {it.message}
              </div>
            ))
          ) : (
            <>
              {run.error.input && <b>{run.error.input}: </b>}
              {run.error.message}
            </>
          )}
        </div>
      )}
    </div>
  );
}, sameNodeContent);

export const RerouteNode = memo(function RerouteNode({ id, selected }: NodeProps<Node<RerouteData>>) {
  const type = useStore(editor, (s) => outputType(id, REROUTE_OUT, { nodes: s.nodes, edges: s.edges }, s.schemas));
  const c = typeColor(type);
  return (
    <div className={`ng-reroute ${selected ? "selected" : ""}`} style={{ "--c": c } as React.CSSProperties} title={`reroute (${type})`} data-testid={`node-${id}`}>
      <Handle type="target" position={Position.Left} id={REROUTE_IN} className="ng-reroute-handle" />
      <Handle type="source" position={Position.Right} id={REROUTE_OUT} className="ng-reroute-handle" />
    </div>
  );
});

export const GroupNode = memo(function GroupNode({ id, data, selected }: NodeProps<Node<GroupData>>) {
  const color = data.color ?? "#5b8def";
  return (
    <div className={`ng-group ${selected ? "selected" : ""}`} style={{ "--g": color } as React.CSSProperties} data-testid={`group-${id}`}>
      <NodeResizer isVisible={Boolean(selected)} minWidth={160} minHeight={80} color={color} onResizeEnd={() => commitCurrent({ label: "resize group" })} />
      <div className="ng-group-title">
        <Title id={id} text={data.title} onRename={(t) => updateGroup(id, { title: t.trim() || "Group" })} />
      </div>
    </div>
  );
});

export const nodeTypes = { op: OpNode, reroute: RerouteNode, group: GroupNode, note: NoteNode };
