// Dragging many nodes as one layer. React Flow's own drag writes every dragged node's position to the
// store on every pointer move, and each write re-renders every node and link wrapper (a 1,000-node
// selection: hundreds of ms a frame). For a drag of LAYER_DRAG_MIN_NODES or more, the canvas instead
// moves the dragged nodes and the links between them with a CSS `translate` and leaves the store alone
// until the drop, when React Flow's final positions land in one update (and one undo step, as before). Links with one end dragged are hidden while dragging (their
// path would need a re-render) and come back redrawn at the drop.
//
// When most of the graph moves, the node and link containers move as composited layers (held compositor
// animations) and the nodes and links that stay are moved back; otherwise the dragged elements move one
// by one.
import type { NodeChange } from "@xyflow/react";
import { editor, groupDragMembers, onNodesChange } from "../state/editor";
import type { GNode } from "../lib/graph";

export const LAYER_DRAG_MIN_NODES = 30;

interface LayerDrag {
  viewport: HTMLElement;
  anchor: string;
  start: { x: number; y: number };
  layers: HTMLElement[]; // the node and link containers, moved as composited layers (most of the graph moves)
  moves: Animation[]; // the layers' offsets, as held compositor animations
  forward: HTMLElement[]; // moved by the drag's offset
  back: HTMLElement[]; // moved back by it (inside a moved container, but not dragged)
  hidden: HTMLElement[]; // links with one end dragged
}

let active: LayerDrag | null = null;

function viewportElement(): HTMLElement | null {
  return document.querySelector<HTMLElement>(".ng-canvas .react-flow__viewport");
}

/** Called at drag start (after the group drag has collected its members). */
export function startLayerDrag(dragged: GNode[]) {
  endLayerDrag();
  const moving = new Set(dragged.map((n) => n.id));
  for (const id of groupDragMembers()) moving.add(id);
  if (moving.size < LAYER_DRAG_MIN_NODES) return;
  const viewport = viewportElement();
  if (!viewport) return;
  const d: LayerDrag = { viewport, anchor: dragged[0].id, start: { ...dragged[0].position }, layers: [], moves: [], forward: [], back: [], hidden: [] };
  const asLayer = moving.size * 2 > editor.get().nodes.length; // most of it moves: move the containers, hold back the rest
  const place = (el: Element | null, moves: boolean) => {
    if (!el) return;
    if (!asLayer && moves) d.forward.push(el as HTMLElement);
    if (asLayer && !moves) d.back.push(el as HTMLElement);
  };
  for (const el of viewport.querySelectorAll<HTMLElement>(".react-flow__node")) place(el, moving.has(el.dataset.id ?? ""));
  const ends = new Map(editor.get().edges.map((e) => [e.id, e]));
  for (const g of viewport.querySelectorAll<SVGGElement>(".react-flow__edge")) {
    const e = ends.get(g.dataset.id ?? "");
    if (!e) continue;
    const a = moving.has(e.source), b = moving.has(e.target);
    if (a !== b) d.hidden.push(g.ownerSVGElement as Element as HTMLElement);
    else place(g.ownerSVGElement, a);
  }
  if (asLayer) {
    for (const c of viewport.querySelectorAll<HTMLElement>(":scope > .react-flow__nodes, :scope > .react-flow__edges")) d.layers.push(c);
    viewport.classList.add("ng-layer-drag");
    const still = [{ transform: "translate(0px, 0px)" }, { transform: "translate(0px, 0px)" }];
    d.moves = d.layers.map((el) => el.animate(still, { duration: 1e9, fill: "both" }));
  }
  for (const el of d.hidden) el.classList.add("ng-drag-hidden");
  active = d;
}

/** Undo the offsets and classes; the store's positions (set at the drop) take over. */
export function endLayerDrag() {
  if (!active) return;
  for (const el of [...active.forward, ...active.back]) el.style.removeProperty("translate");
  for (const a of active.moves) a.cancel();
  for (const el of active.hidden) el.classList.remove("ng-drag-hidden");
  active.viewport.classList.remove("ng-layer-drag");
  active = null;
}

/** React Flow's node changes: drag frames of a layer drag only move the layer; the rest go to the store. */
export function onNodesChangeLayered(changes: NodeChange[]) {
  if (active) {
    const d = active;
    const c = changes.find((x) => x.type === "position" && x.id === d.anchor);
    if (c && c.type === "position" && c.dragging && c.position) {
      // inline `translate` on each moved element: a non-inherited property, so only those elements'
      // styles are recomputed (a custom property on the viewport would restyle every node's subtree)
      const dx = c.position.x - d.start.x, dy = c.position.y - d.start.y;
      const fwd = `${dx}px ${dy}px`, back = `${-dx}px ${-dy}px`;
      // an animation's transform runs on the compositor: the page is not re-layerized each frame
      const t = `translate(${dx}px, ${dy}px)`;
      for (const a of d.moves) (a.effect as KeyframeEffect).setKeyframes([{ transform: t }, { transform: t }]);
      for (const el of d.forward) el.style.translate = fwd;
      for (const el of d.back) el.style.translate = back;
      return;
    }
    // the drop (or an aborted drag): React Flow's final positions go to the store in this update
    if (changes.some((x) => x.type === "position" && !x.dragging)) endLayerDrag();
  }
  onNodesChange(changes);
}

// Panning by the pointer: React Flow rewrites the viewport's inline transform each frame, which makes
// the browser re-layerize the whole page; a held animation of the same transform on the viewport wins
// over the inline style and moves it on the compositor instead. Cancelled when the pan ends, leaving
// React Flow's (identical) inline transform.
let viewMove: Animation | null = null;

export function moveViewLayer(vp: { x: number; y: number; zoom: number }) {
  const t = `translate(${vp.x}px, ${vp.y}px) scale(${vp.zoom})`;
  if (viewMove) {
    (viewMove.effect as KeyframeEffect).setKeyframes([{ transform: t }, { transform: t }]);
    return;
  }
  const viewport = viewportElement();
  if (viewport) viewMove = viewport.animate([{ transform: t }, { transform: t }], { duration: 1e9, fill: "both" });
}

export function endViewLayer() {
  viewMove?.cancel();
  viewMove = null;
}
