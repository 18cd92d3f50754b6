// A node's mode and look in ComfyUI's UI (litegraph) format and in ours, both ways. litegraph's
// modes: 0 ALWAYS, 2 NEVER (muted), 4 BYPASS; flags.collapsed / flags.pinned; color (title bar) and
// bgcolor (body). The server's import (nodegraph/formats/comfy_ui.py, keep_modes) reads the same fields.
import type { NativeNode } from "./workflow";

export const COMFY_MODE = { always: 0, muted: 2, bypassed: 4 } as const;

export interface ComfyLook {
  mode: number;
  flags: { collapsed?: boolean; pinned?: boolean };
  color?: string;
  bgcolor?: string;
}

/** The litegraph fields of a native node (for the UI-format export). */
export function comfyLookOf(node: NativeNode): ComfyLook {
  const ui = node.ui ?? {};
  const out: ComfyLook = { mode: node.mode ? COMFY_MODE[node.mode] : COMFY_MODE.always, flags: {} };
  if (ui.collapsed === true) out.flags.collapsed = true;
  if (ui.pinned === true) out.flags.pinned = true;
  if (typeof ui.color === "string") out.color = ui.color;
  if (typeof ui.bgcolor === "string") out.bgcolor = ui.bgcolor;
  return out;
}

/** A litegraph node's mode and look as a native node's `mode` and `ui` fields (for the import). */
export function nativeLookOf(node: Partial<ComfyLook>): Pick<NativeNode, "mode"> & { ui: Record<string, unknown> } {
  const ui: Record<string, unknown> = {};
  if (node.flags?.collapsed) ui.collapsed = true;
  if (node.flags?.pinned) ui.pinned = true;
  if (typeof node.color === "string") ui.color = node.color;
  if (typeof node.bgcolor === "string") ui.bgcolor = node.bgcolor;
  const mode = node.mode === COMFY_MODE.muted ? "muted" : node.mode === COMFY_MODE.bypassed ? "bypassed" : undefined;
  return mode ? { mode, ui } : { ui };
}
