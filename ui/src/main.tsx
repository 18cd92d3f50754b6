import { createRoot } from "react-dom/client";
import * as React from "react";
import "@xyflow/react/dist/style.css";
import "@fontsource/inter/latin-400.css";
import "@fontsource/inter/latin-500.css";
import "@fontsource/inter/latin-600.css";
import "./styles.css";
import { App } from "./App";
import { registerExtension } from "./extensions";
import * as editorState from "./state/editor";
import * as tabState from "./state/tabs";
import { estimateSize } from "./lib/placement";
import { _handleEvent, runtime } from "./state/runtime";
import { api } from "./lib/api";

// The public handle for plugins' UI (registerExtension) and for automation (tests, benchmarks).
declare global {
  interface Window {
    nodegraph: Record<string, unknown>;
  }
}
window.nodegraph = {
  version: 1,
  React,
  registerExtension,
  api,
  editor: editorState.editor,
  runtime,
  loadDocument: editorState.loadDocument,
  currentWorkflow: editorState.currentWorkflow,
  graph: editorState.graph,
  tabs: tabState.tabs,
  /** The size a new node of a type is placed by (it lands centred on the drop point). */
  estimateNodeSize: (type: string) => estimateSize(editorState.editor.get().schemas[type]),
  /** Test hook: a server event as if the socket brought it. */
  _handleEvent,
};

createRoot(document.getElementById("root")!).render(<App />);
