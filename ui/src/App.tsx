import { useEffect, useState } from "react";
import { ReactFlowProvider, useReactFlow } from "@xyflow/react";
import { Canvas } from "./components/Canvas";
import { Palette } from "./components/Palette";
import { Toolbar } from "./components/Toolbar";
import { WorkflowTabs } from "./components/WorkflowTabs";
import { Lightbox, SidePanel, Toasts } from "./components/SidePanel";
import { addGroup, addNode, editor, setSchemas } from "./state/editor";
import { connectEvents, runtime, toast } from "./state/runtime";
import { restoreAutosave, startAutosave } from "./state/documents";
import { api } from "./lib/api";
import { useStore } from "./state/store";

function Shell() {
  const rf = useReactFlow();
  const [panelOpen, setPanelOpen] = useState(() => localStorage.getItem("nodegraph:panel") !== "closed");
  const [paletteOpen, setPaletteOpen] = useState(() => localStorage.getItem("nodegraph:palette-open") !== "closed");
  const serverError = useStore(runtime, (s) => s.serverError);
  const loaded = useStore(editor, (s) => s.schemasLoaded);

  useEffect(() => {
    // automation hook (tests, benchmarks): set the viewport without a gesture
    window.nodegraph.__setViewport = (vp: { x: number; y: number; zoom: number }) => rf.setViewport(vp);
    window.nodegraph.__getViewport = () => rf.getViewport();
    let cancelled = false;
    const load = async (attempt = 0) => {
      try {
        const schemas = await api.nodes();
        if (cancelled) return;
        setSchemas(schemas);
        runtime.set({ serverError: null });
        restoreAutosave(() => rf.getViewport());
        startAutosave();
      } catch (e) {
        runtime.set({ serverError: `Cannot reach the nodegraph server (${(e as Error).message}). Retrying…` });
        setTimeout(() => load(attempt + 1), Math.min(5000, 500 * 2 ** attempt));
      }
    };
    void load();
    connectEvents();
    return () => {
      cancelled = true;
    };
  }, [rf]);

  const center = () => {
    const el = document.querySelector(".ng-canvas")!.getBoundingClientRect();
    return rf.screenToFlowPosition({ x: el.left + el.width / 2 - 120, y: el.top + el.height / 2 - 60 });
  };

  return (
    <div className="ng-app">
      <Toolbar
        onFit={() => void rf.fitView({ padding: 0.15, maxZoom: 1, duration: 200 })}
        onGroup={() => addGroup(center())}
        viewport={() => rf.getViewport()}
        panelOpen={panelOpen}
        togglePanel={() => {
          localStorage.setItem("nodegraph:panel", panelOpen ? "closed" : "open");
          setPanelOpen(!panelOpen);
        }}
        paletteOpen={paletteOpen}
        togglePalette={() => {
          localStorage.setItem("nodegraph:palette-open", paletteOpen ? "closed" : "open");
          setPaletteOpen(!paletteOpen);
        }}
      />
      {loaded && <WorkflowTabs />}
      {serverError && <div className="ng-banner">{serverError}</div>}
      <div className="ng-main">
        {paletteOpen && (
          <Palette
            onAdd={(type) => {
              if (addNode(type, center()) === null) toast(`Unknown node type ${type}`, "error");
            }}
          />
        )}
        {loaded ? <Canvas /> : <div className="ng-canvas ng-loading">Loading node types…</div>}
        {panelOpen && <SidePanel />}
      </div>
      <Toasts />
      <Lightbox />
    </div>
  );
}

export function App() {
  return (
    <ReactFlowProvider>
      <Shell />
    </ReactFlowProvider>
  );
}
