// Level of detail: below this zoom a node's text is a few pixels tall and unreadable, so the canvas
// stops painting it (and the shadows); sizes stay the same, so sockets and links do not move. With
// software rendering this is most of the cost of panning a 1,000-node graph at fit-all zoom.
// ComfyUI's canvas does the same ("low quality" below a zoom threshold).
import { useStore as useFlowStore } from "@xyflow/react";

export const LOW_DETAIL_ZOOM = 0.35;

/** True while the canvas is zoomed out past LOW_DETAIL_ZOOM (re-renders only when that flips). */
export function useLowDetail(): boolean {
  return useFlowStore((s) => s.transform[2] < LOW_DETAIL_ZOOM);
}
