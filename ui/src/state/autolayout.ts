// A workflow opened without positions is laid out twice: at once with estimated sizes (so something
// shows), then again with the sizes React Flow measured once the nodes are drawn, so that no two
// nodes overlap however tall their widgets really are. The second pass is no undo step.
import { editor, relayoutLoaded } from "./editor";
import { layoutNodes } from "../lib/layout";

/** Measured sizes may never come for nodes the canvas does not render (off screen): stop waiting. */
const WAIT_MS = 2000;

export function layoutWhenMeasured(ids: string[]) {
  if (!ids.length) return;
  const want = new Set(ids);
  const loaded = editor.get().loadCount;
  let unsubscribe = () => {};
  const apply = () => {
    unsubscribe();
    clearTimeout(timer);
    const s = editor.get();
    if (s.loadCount !== loaded) return; // another document came meanwhile
    relayoutLoaded(layoutNodes(s.nodes, s.edges, s.schemas, want));
  };
  const check = () => {
    const s = editor.get();
    if (s.loadCount !== loaded) return apply();
    if (s.nodes.every((n) => !want.has(n.id) || (n.measured?.width && n.measured?.height))) apply();
  };
  const timer = setTimeout(apply, WAIT_MS);
  unsubscribe = editor.subscribe(check);
}
