// The canvas: React Flow wired to the editor store, drops (palette entries, files), double-click
// search, context menus and keyboard shortcuts.
import { useCallback, useEffect, useRef, useState } from "react";
import { addNote } from "../state/notes";
import { addSlotFromLink, subgraphMenu } from "../state/subgraphs";
import { SubgraphBar } from "./SubgraphBar";
import {
  Background, BackgroundVariant, Controls, MiniMap, ReactFlow, useReactFlow,
  type Connection as RFConnection, type Edge, type FinalConnectionState, type Node, type OnConnectEnd, type Viewport,
} from "@xyflow/react";
import {
  addConnection, addGroup, addNode, addReroute, commitCurrent, copy, deleteSelection, duplicateNode, editor,
  endGroupDrag, onEdgesChange, pasteAt, redo, removeEdge, selectAll, startGroupDrag, toggleConverted,
  undo, verdict,
} from "../state/editor";
import { useStore } from "../state/store";
import { runtime, toast } from "../state/runtime";
import { queueWorkflow } from "../state/run";
import { openFile, saveWorkflow } from "../state/documents";
import { nodeTypes } from "./Nodes";
import { ConnectionLine, edgeTypes } from "./Edges";
import { DRAG_MIME } from "./Palette";
import { useLowDetail } from "./detail";
import { endLayerDrag, endViewLayer, moveViewLayer, onNodesChangeLayered, startLayerDrag } from "./layerDrag";
import { SearchPopup, SearchRequest } from "./SearchPopup";
import { ContextMenu, MenuItem } from "./ContextMenu";
import { modeMenuItems } from "./NodeModeMenu";
import { SelectionToolbox } from "./SelectionToolbox";
import { estimateSize, placeCentred } from "../lib/placement";
import { handleModeKey } from "../state/nodeModes";
import { GEdge, GNode, handleName, inHandle, isOp, outHandle, outputType } from "../lib/graph";
import { isWidgetInput, typesCompatible } from "../lib/schema";

const isTyping = (t: EventTarget | null) => {
  const el = t as HTMLElement | null;
  return !!el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable);
};

interface PendingLink {
  nodeId: string;
  handle: string;
  kind: "source" | "target";
  type: string;
}

export function Canvas() {
  const nodes = useStore(editor, (s) => s.nodes) as Node[];
  const edges = useStore(editor, (s) => s.edges) as Edge[];
  const loadCount = useStore(editor, (s) => s.loadCount);
  const empty = useStore(editor, (s) => s.nodes.length === 0);
  const rf = useReactFlow();
  const lowDetail = useLowDetail();
  const wrapper = useRef<HTMLDivElement>(null);
  const mouse = useRef({ x: 0, y: 0 });
  const [search, setSearch] = useState<(SearchRequest & { flow: { x: number; y: number }; link?: PendingLink }) | null>(null);
  const [menu, setMenu] = useState<{ x: number; y: number; items: MenuItem[] } | null>(null);

  // a freshly loaded document: go to its saved viewport, or fit it
  useEffect(() => {
    if (!loadCount) return;
    const vp = editor.get().viewport;
    const t = setTimeout(() => {
      if (vp) void rf.setViewport(vp);
      else void rf.fitView({ padding: 0.15, maxZoom: 1 });
    }, 60);
    return () => clearTimeout(t);
  }, [loadCount, rf]);

  const flowAt = (clientX: number, clientY: number) => rf.screenToFlowPosition({ x: clientX, y: clientY });
  const center = () => {
    const r = wrapper.current!.getBoundingClientRect();
    return flowAt(r.left + r.width / 2, r.top + r.height / 2);
  };

  /** A new node of `type` centred at `at`, inside the visible canvas (never under the side panel). */
  const placeNew = (type: string, at: { x: number; y: number }) => {
    const schema = editor.get().schemas[type];
    if (!schema || !wrapper.current) return at;
    const r = wrapper.current.getBoundingClientRect();
    const a = flowAt(r.left, r.top);
    const b = flowAt(r.right, r.bottom);
    return placeCentred(at, estimateSize(schema), { x: a.x, y: a.y, width: b.x - a.x, height: b.y - a.y });
  };

  const isValidConnection = useCallback((c: RFConnection | Edge) => verdict(c as RFConnection).ok, []);

  const onConnect = useCallback((c: RFConnection) => {
    if (addSlotFromLink(c)) return; // dropped on a subgraph boundary's empty slot
    const v = verdict(c);
    if (!v.ok) toast(`Cannot connect: ${v.reason}`, "warn");
    else addConnection(c);
  }, []);

  const onConnectEnd: OnConnectEnd = useCallback((event, state: FinalConnectionState) => {
    if (state.isValid) return;
    const fromHandle = state.fromHandle;
    if (!fromHandle) return;
    if (state.toHandle) {
      // dropped on a socket that refused it: say why
      const c =
        fromHandle.type === "source"
          ? { source: fromHandle.nodeId, sourceHandle: fromHandle.id ?? null, target: state.toHandle.nodeId, targetHandle: state.toHandle.id ?? null }
          : { source: state.toHandle.nodeId, sourceHandle: state.toHandle.id ?? null, target: fromHandle.nodeId, targetHandle: fromHandle.id ?? null };
      const v = verdict(c);
      if (!v.ok) toast(`Cannot connect: ${v.reason}`, "warn");
      return;
    }
    // dropped on empty canvas: offer the nodes that fit
    const pt = "changedTouches" in event ? event.changedTouches[0] : (event as MouseEvent);
    const target = (event as MouseEvent).target as HTMLElement | null;
    if (!target?.classList.contains("react-flow__pane")) return;
    const s = editor.get();
    const g = { nodes: s.nodes, edges: s.edges };
    const type =
      fromHandle.type === "source"
        ? outputType(fromHandle.nodeId, fromHandle.id, g, s.schemas)
        : (() => {
            const n = s.nodes.find((x) => x.id === fromHandle.nodeId);
            return isOp(n) ? s.schemas[n.data.nodeType]?.inputs.find((i) => i.name === handleName(fromHandle.id))?.type ?? "*" : "*";
          })();
    setSearch({
      screen: { x: pt.clientX, y: pt.clientY },
      flow: flowAt(pt.clientX, pt.clientY),
      wantInput: fromHandle.type === "source" ? type : undefined,
      wantOutput: fromHandle.type === "target" ? type : undefined,
      link: { nodeId: fromHandle.nodeId, handle: fromHandle.id ?? "", kind: fromHandle.type, type },
    });
  }, []);

  // dragging a link's end off an input detaches it (and may re-attach it elsewhere)
  const reconnected = useRef(false);
  const onReconnectStart = useCallback(() => {
    reconnected.current = false;
  }, []);
  const onReconnect = useCallback((old: Edge, c: RFConnection) => {
    reconnected.current = true;
    const v = verdict(c);
    if (!v.ok) {
      toast(`Cannot connect: ${v.reason}`, "warn");
      return;
    }
    const s = editor.get();
    editor.set({ edges: s.edges.filter((e) => e.id !== old.id) });
    addConnection(c);
  }, []);
  const onReconnectEnd = useCallback((_: unknown, edge: Edge) => {
    if (!reconnected.current) removeEdge(edge.id);
    reconnected.current = false;
  }, []);

  const pick = (type: string) => {
    if (!search) return;
    const at = search.flow;
    setSearch(null);
    if (type === "__reroute") {
      addReroute(at);
      return;
    }
    const id = addNode(type, placeNew(type, at));
    if (!id || !search.link) return;
    // wire the new node to the link that was dropped
    const s = editor.get();
    const schema = s.schemas[type];
    const l = search.link;
    if (l.kind === "source") {
      const inp = schema.inputs.find((i) => typesCompatible(l.type, i.type) && !isWidgetInput(i)) ?? schema.inputs.find((i) => typesCompatible(l.type, i.type));
      if (inp) addConnection({ source: l.nodeId, sourceHandle: l.handle, target: id, targetHandle: inHandle(inp.name) });
    } else {
      const out = schema.outputs.find((o) => typesCompatible(o.type, l.type));
      if (out) addConnection({ source: id, sourceHandle: outHandle(out.name), target: l.nodeId, targetHandle: l.handle });
    }
  };

  // --- drops: palette entries and files ---
  const onDragOver = useCallback((e: React.DragEvent) => {
    if (e.dataTransfer.types.includes(DRAG_MIME) || e.dataTransfer.types.includes("Files")) {
      e.preventDefault();
      e.dataTransfer.dropEffect = "copy";
    }
  }, []);
  const onDrop = useCallback(
    (e: React.DragEvent) => {
      const type = e.dataTransfer.getData(DRAG_MIME);
      if (type) {
        e.preventDefault();
        addNode(type, placeNew(type, flowAt(e.clientX, e.clientY)));
        return;
      }
      const file = e.dataTransfer.files?.[0];
      if (file) {
        e.preventDefault();
        void openFile(file);
      }
    },
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [rf],
  );

  // --- double-click on empty canvas: search ---
  const onDoubleClick = (e: React.MouseEvent) => {
    const t = e.target as HTMLElement;
    if (!t.classList.contains("react-flow__pane")) return;
    setSearch({ screen: { x: e.clientX, y: e.clientY }, flow: flowAt(e.clientX, e.clientY) });
  };

  // --- context menus ---
  const onNodeContextMenu = useCallback((e: React.MouseEvent, node: Node) => {
    e.preventDefault();
    const n = node as GNode;
    const s = editor.get();
    const items: MenuItem[] = [];
    if (isOp(n)) {
      const schema = s.schemas[n.data.nodeType];
      items.push({ label: "Duplicate", onClick: () => duplicateNode(n.id) }, ...modeMenuItems(n.id));
      const widgets = schema?.inputs.filter(isWidgetInput) ?? [];
      if (widgets.length) {
        items.push({ separator: true, label: "" }, { heading: true, label: "Widget ⇄ input socket" });
        for (const w of widgets) {
          const conv = n.data.converted?.includes(w.name);
          items.push({ label: conv ? `Convert ${w.name} to widget` : `Convert ${w.name} to input`, onClick: () => toggleConverted(n.id, w.name) });
        }
      }
      items.push({ separator: true, label: "" });
      items.push(...subgraphMenu(n.id));
    }
    items.push({ label: "Delete", hint: "Del", onClick: () => (selectOnly(n.id), deleteSelection()) });
    setMenu({ x: e.clientX, y: e.clientY, items });
  }, []);

  const onPaneContextMenu = useCallback(
    (e: React.MouseEvent | MouseEvent) => {
      e.preventDefault();
      const flow = flowAt(e.clientX, e.clientY);
      setMenu({
        x: e.clientX,
        y: e.clientY,
        items: [
          { label: "Add node…", hint: "double-click", onClick: () => setSearch({ screen: { x: e.clientX, y: e.clientY }, flow }) },
          { label: "Add reroute point", onClick: () => addReroute(flow) },
          { label: "Add note", onClick: () => addNote(flow) },
          { label: "Add markdown note", onClick: () => addNote(flow, "MarkdownNote") },
          { label: "Add group", hint: "Ctrl+G", onClick: () => addGroup(flow) },
          { separator: true, label: "" },
          { label: "Paste", hint: "Ctrl+V", onClick: () => pasteAt(flow) },
          { label: "Select all", hint: "Ctrl+A", onClick: selectAll },
          { label: "Fit to view", hint: ".", onClick: () => void rf.fitView({ padding: 0.15, maxZoom: 1 }) },
        ],
      });
    },
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [rf],
  );

  const onEdgeContextMenu = useCallback((e: React.MouseEvent, edge: Edge) => {
    e.preventDefault();
    const flow = flowAt(e.clientX, e.clientY);
    setMenu({
      x: e.clientX,
      y: e.clientY,
      items: [
        { label: "Add reroute point here", onClick: () => addReroute({ x: flow.x - 8, y: flow.y - 8 }, edge as GEdge) },
        { label: "Delete link", onClick: () => removeEdge(edge.id) },
      ],
    });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  const onEdgeDoubleClick = useCallback((e: React.MouseEvent, edge: Edge) => {
    const flow = flowAt(e.clientX, e.clientY);
    addReroute({ x: flow.x - 8, y: flow.y - 8 }, edge as GEdge);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  // --- keyboard ---
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const mod = e.ctrlKey || e.metaKey;
      const key = e.key.toLowerCase();
      if (mod && key === "enter") {
        e.preventDefault();
        void queueWorkflow(runtime.get().batch);
        return;
      }
      if (mod && key === "s") {
        e.preventDefault();
        saveWorkflow(rf.getViewport());
        return;
      }
      if (isTyping(e.target)) return;
      if (handleModeKey(e)) return;
      if (mod && key === "z" && !e.shiftKey) (e.preventDefault(), undo());
      else if (mod && (key === "y" || (key === "z" && e.shiftKey))) (e.preventDefault(), redo());
      else if (mod && key === "c") {
        const n = copy();
        if (n) toast(`Copied ${n} node${n > 1 ? "s" : ""}`, "info", 1500);
      } else if (mod && key === "v") {
        e.preventDefault();
        pasteAt(flowAt(mouse.current.x, mouse.current.y));
      } else if (mod && key === "a") (e.preventDefault(), selectAll());
      else if (mod && key === "g") (e.preventDefault(), addGroup(center()));
      else if (key === "delete" || key === "backspace") (e.preventDefault(), deleteSelection());
      else if (key === "." && !mod) void rf.fitView({ padding: 0.15, maxZoom: 1, duration: 200 });
    };
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [rf]);

  return (
    <div
      className="ng-canvas"
      ref={wrapper}
      onMouseMove={(e) => (mouse.current = { x: e.clientX, y: e.clientY })}
      onDoubleClick={onDoubleClick}
      data-testid="canvas"
    >
      <SubgraphBar />
      <ReactFlow
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        edgeTypes={edgeTypes}
        onNodesChange={onNodesChangeLayered}
        onEdgesChange={onEdgesChange}
        onConnect={onConnect}
        onConnectEnd={onConnectEnd}
        isValidConnection={isValidConnection}
        connectionLineComponent={ConnectionLine}
        connectionRadius={24}
        edgesReconnectable
        onReconnectStart={onReconnectStart}
        onReconnect={onReconnect}
        onReconnectEnd={onReconnectEnd}
        onNodeDragStart={onNodeDragStart}
        onNodeDragStop={onNodeDragStop}
        onMoveStart={onMoveStart}
        onMove={onMove}
        onMoveEnd={onMoveEnd}
        onDrop={onDrop}
        onDragOver={onDragOver}
        onNodeContextMenu={onNodeContextMenu}
        onPaneContextMenu={onPaneContextMenu}
        onEdgeContextMenu={onEdgeContextMenu}
        onEdgeDoubleClick={onEdgeDoubleClick}
        zoomOnDoubleClick={false}
        deleteKeyCode={null}
        selectionKeyCode="Shift"
        multiSelectionKeyCode={["Control", "Meta"]}
        onlyRenderVisibleElements
        minZoom={0.1}
        maxZoom={3}
        colorMode="dark"
        defaultViewport={{ x: 80, y: 60, zoom: 1 }}
        proOptions={{ hideAttribution: true }}
        elevateNodesOnSelect={false}
        className={lowDetail ? "ng-low-detail" : undefined}
      >
        <Background variant={BackgroundVariant.Dots} gap={22} size={1.2} color="#2d323b" />
        {!empty && <MiniMap
          style={{ width: 180, height: 120 }}
          pannable
          zoomable
          className="ng-minimap"
          nodeColor={minimapColor}
          nodeStrokeColor={minimapStroke}
          maskColor="rgba(12,13,16,0.65)"
        />}
        <Controls showInteractive={false} className="ng-controls" />
        <SelectionToolbox />
      </ReactFlow>
      <div className="ng-hit-shield" />
      {empty && (
        <div className="ng-empty-canvas">
          <div className="ng-empty-title">Start a workflow</div>
          <div className="ng-empty-lines">
            <span><kbd>double-click</kbd> the canvas to search for a node</span>
            <span>drag a node from the palette on the left</span>
            <span>open an example from <b>Workflow ▾</b>, or drop a workflow JSON or PNG here</span>
          </div>
        </div>
      )}
      {search && <SearchPopup req={search} onPick={pick} onClose={() => setSearch(null)} />}
      {menu && <ContextMenu {...menu} onClose={() => setMenu(null)} />}
    </div>
  );
}

// stable handlers (module level): new functions on each render would re-render React Flow's parts
const onNodeDragStart = (_: unknown, __: unknown, dragged: Node[]) => {
  shield(true);
  startGroupDrag(dragged as GNode[]);
  startLayerDrag(dragged as GNode[]);
};
const onNodeDragStop = () => {
  shield(false);
  endLayerDrag();
  endGroupDrag();
  commitCurrent({ label: "move" });
};
// During a pointer drag (nodes or the view) a transparent shield covers the canvas: the drag listens
// on the window, and without the shield the browser hit-tests every node and link curve under the
// pointer on each move (with 1,000 on screen, tens of ms a move). While the view moves, it is one
// composited layer that moves without repainting (repainted sharp when it stops).
const shield = (on: boolean) => document.querySelector(".ng-canvas")?.classList.toggle("ng-gesture", on);
const movingView = (on: boolean) =>
  document.querySelector(".ng-canvas .react-flow__viewport")?.classList.toggle("ng-view-moving", on);
const onMoveStart = () => movingView(true);
const onMove = (e: MouseEvent | TouchEvent | null, vp: Viewport) => {
  if (!(e && "buttons" in e && e.buttons)) return; // a pan by the pointer (not a wheel zoom, not a click)
  shield(true);
  moveViewLayer(vp);
};
const onMoveEnd = () => (endViewLayer(), movingView(false), shield(false));
const minimapColor = (n: Node) => (n.type === "group" ? "rgba(91,141,239,0.15)" : n.type === "reroute" ? "#9aa4b1" : "#3a404b");
const minimapStroke = (n: Node) => (n.selected ? "#5b8def" : "transparent");

function selectOnly(id: string) {
  const s = editor.get();
  editor.set({ nodes: s.nodes.map((n) => ({ ...n, selected: n.id === id })), edges: s.edges.map((e) => (e.selected ? { ...e, selected: false } : e)) });
}

