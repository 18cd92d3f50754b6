// The stable extension point for plugins' UI. A plugin's script calls
//   window.nodegraph.registerExtension({ name, widgets: { myDisplay: Component }, nodeFooters: { MyNode: Component } })
// Widgets are chosen by an input's `display` hint first, then its type; footers draw under a node type's body.
import type { ComponentType } from "react";
import type { InputSchema } from "./lib/schema";
import type { ServerEvent, PreviewEvent } from "./lib/events";

export interface WidgetProps {
  nodeId: string;
  input: InputSchema;
  value: unknown;
  invalid: boolean;
  onChange: (value: unknown) => void;
}

export interface NodeFooterProps {
  nodeId: string;
  nodeType: string;
  values: Record<string, unknown>;
}

export interface EditorExtension {
  name: string;
  widgets?: Record<string, ComponentType<WidgetProps>>;
  nodeFooters?: Record<string, ComponentType<NodeFooterProps>>;
  onEvent?: (event: ServerEvent | PreviewEvent) => void;
}

const extensions: EditorExtension[] = [];
let version = 0;
const listeners = new Set<() => void>();

export function registerExtension(ext: EditorExtension) {
  const at = extensions.findIndex((e) => e.name === ext.name);
  if (at >= 0) extensions[at] = ext;
  else extensions.push(ext);
  version++;
  for (const l of listeners) l();
}

export function extensionWidget(input: InputSchema): ComponentType<WidgetProps> | undefined {
  for (let i = extensions.length - 1; i >= 0; i--) {
    const w = extensions[i].widgets;
    if (!w) continue;
    if (input.display && w[input.display]) return w[input.display];
    if (w[input.type]) return w[input.type];
  }
  return undefined;
}

export function extensionFooter(nodeType: string): ComponentType<NodeFooterProps> | undefined {
  for (let i = extensions.length - 1; i >= 0; i--) {
    const f = extensions[i].nodeFooters?.[nodeType];
    if (f) return f;
  }
  return undefined;
}

export function extensionsVersion() {
  return version;
}

export function subscribeExtensions(l: () => void) {
  listeners.add(l);
  return () => listeners.delete(l);
}

export function notifyExtensions(e: ServerEvent | PreviewEvent) {
  for (const ext of extensions) {
    try {
      ext.onEvent?.(e);
    } catch (err) {
      console.error(`extension ${ext.name}:`, err);
    }
  }
}
