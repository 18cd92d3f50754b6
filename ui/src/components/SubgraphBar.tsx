// Subgraph navigation over the canvas: the breadcrumb (root › subgraph › …; a click goes back up),
// the inputs/outputs of the subgraph being edited (rename them here), and ComfyUI's keys:
// Ctrl+Shift+E converts the selection, Esc leaves the subgraph, double-click on a subgraph node enters it.
import { useEffect, useState } from "react";
import { useUpdateNodeInternals } from "@xyflow/react";
import { useStore } from "../state/store";
import { editor } from "../state/editor";
import { toast } from "../state/runtime";
import { convertSelection, currentDefinition, enterSubgraph, exitTo, isSubgraphNode, removeSlot, renameSlot, subgraphs } from "../state/subgraphs";

const typing = (t: EventTarget | null) => t instanceof HTMLElement && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));

function SlotName({ kind, index, name }: { kind: "input" | "output"; index: number; name: string }) {
  const [text, setText] = useState(name);
  useEffect(() => setText(name), [name]);
  const done = () => {
    if (text !== name && !renameSlot(kind, index, text)) {
      toast(`Cannot rename ${kind} ${name} to "${text}" (empty or taken)`, "warn");
      setText(name);
    }
  };
  return (
    <span className="ng-sg-slot-wrap">
    <input
      className="ng-sg-slot nodrag"
      data-testid={`sg-${kind}-${index}`}
      aria-label={`subgraph ${kind} ${index + 1} name`}
      value={text}
      onChange={(e) => setText(e.target.value)}
      onBlur={done}
      onKeyDown={(e) => {
        e.stopPropagation();
        if (e.key === "Enter") (e.target as HTMLInputElement).blur();
        if (e.key === "Escape") (setText(name), (e.target as HTMLInputElement).blur());
      }}
    />
    <button
      className="ng-sg-remove" data-testid={`sg-remove-${kind}-${index}`} title={`Remove ${kind} ${name}`}
      aria-label={`remove subgraph ${kind} ${name}`} onClick={() => removeSlot(kind, index)}
    >×</button>
    </span>
  );
}

export function SubgraphBar() {
  const stack = useStore(subgraphs, (s) => s.stack);
  const defs = useStore(subgraphs, (s) => s.defs);
  const docName = useStore(editor, (s) => s.name);
  // an input/output added, removed or renamed changes the handles of the boundary nodes and the
  // subgraph nodes: React Flow must measure them again to draw links to the new ones
  const schemas = useStore(editor, (s) => s.schemas);
  const updateInternals = useUpdateNodeInternals();
  useEffect(() => {
    const ids = editor.get().nodes.filter((n) => n.id === "-10" || n.id === "-20" || isSubgraphNode(n)).map((n) => n.id);
    if (!ids.length) return;
    const frame = requestAnimationFrame(() => updateInternals(ids));
    return () => cancelAnimationFrame(frame);
  }, [defs, schemas, updateInternals]);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (typing(e.target)) return;
      if ((e.ctrlKey || e.metaKey) && e.shiftKey && e.key.toLowerCase() === "e") {
        e.preventDefault();
        if (convertSelection() === null) toast("Select the nodes to put in a subgraph first", "warn");
      } else if (e.key === "Escape" && subgraphs.get().stack.length && !document.querySelector(".ng-ctx-backdrop, .ng-search-backdrop")) {
        exitTo(subgraphs.get().stack.length - 1);
      }
    };
    const onDouble = (e: MouseEvent) => {
      const el = (e.target as HTMLElement).closest?.(".react-flow__node") as HTMLElement | null;
      const id = el?.dataset.id;
      if (!id || typing(e.target)) return;
      const node = editor.get().nodes.find((n) => n.id === id);
      if (isSubgraphNode(node)) (e.stopPropagation(), enterSubgraph(id));
    };
    addEventListener("keydown", onKey);
    addEventListener("dblclick", onDouble, true);
    return () => (removeEventListener("keydown", onKey), removeEventListener("dblclick", onDouble, true));
  }, []);

  if (!stack.length) return null;
  const def = currentDefinition();
  const names = stack.map((l) => defs.find((d) => d.id === l.defId)?.name || "Subgraph");
  return (
    <div className="ng-sg-bar" data-testid="subgraph-bar">
      <nav className="ng-sg-crumbs" aria-label="subgraph path" data-testid="subgraph-breadcrumb">
        <button className="ng-sg-crumb" data-testid="crumb-0" onClick={() => exitTo(0)}>{docName || "Workflow"}</button>
        {names.map((n, k) => (
          <span key={k}>
            <span className="ng-sg-sep">›</span>
            <button className="ng-sg-crumb" data-testid={`crumb-${k + 1}`} disabled={k === names.length - 1} onClick={() => exitTo(k + 1)}>{n}</button>
          </span>
        ))}
      </nav>
      {def && (
        <div className="ng-sg-io">
          <div><span className="ng-sg-head">Inputs</span>{def.inputs.map((s, k) => <SlotName key={s.id ?? k} kind="input" index={k} name={s.name} />)}</div>
          <div><span className="ng-sg-head">Outputs</span>{def.outputs.map((s, k) => <SlotName key={s.id ?? k} kind="output" index={k} name={s.name} />)}</div>
        </div>
      )}
    </div>
  );
}
