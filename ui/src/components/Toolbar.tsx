// The top bar: workflow menu, undo/redo, view tools, and the run controls.
import { useEffect, useRef, useState } from "react";
import { api } from "../lib/api";
import { editor, redo, undo } from "../state/editor";
import { newTab } from "../state/tabs";
import { runtime } from "../state/runtime";
import { useStore } from "../state/store";
import { exportComfyApi, exportComfyUI, openExample, openFile, saveWorkflow } from "../state/documents";
import { interrupt, queueWorkflow } from "../state/run";

function Menu({ label, children, testid }: { label: string; children: (close: () => void) => React.ReactNode; testid?: string }) {
  const [open, setOpen] = useState(false);
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!open) return;
    const off = (e: MouseEvent) => ref.current && !ref.current.contains(e.target as Node) && setOpen(false);
    addEventListener("mousedown", off);
    return () => removeEventListener("mousedown", off);
  }, [open]);
  return (
    <div className="ng-menu" ref={ref}>
      <button className={`ng-btn ng-btn-ghost ${open ? "active" : ""}`} onClick={() => setOpen(!open)} data-testid={testid}>
        {label} <span className="ng-caret-down">▾</span>
      </button>
      {open && <div className="ng-menu-list">{children(() => setOpen(false))}</div>}
    </div>
  );
}

function Examples({ close }: { close: () => void }) {
  const [names, setNames] = useState<string[] | null>(null);
  useEffect(() => {
    api.workflows().then(
      (list) => setNames(list),
      () => setNames([]),
    );
  }, []);
  if (names === null) return <div className="ng-menu-note">Loading…</div>;
  if (!names.length) return <div className="ng-menu-note">No examples on the server</div>;
  return (
    <>
      {names.map((n) => (
        <button
          key={n}
          className="ng-menu-item"
          data-testid={`example-${n}`}
          onClick={() => {
            close();
            void openExample(n);
          }}
        >
          {n.replace(/\.json$/, "")}
        </button>
      ))}
    </>
  );
}

export function Toolbar(props: {
  onFit: () => void;
  onGroup: () => void;
  viewport: () => { x: number; y: number; zoom: number };
  panelOpen: boolean;
  togglePanel: () => void;
  paletteOpen: boolean;
  togglePalette: () => void;
}) {
  const name = useStore(editor, (s) => s.name);
  const dirty = useStore(editor, (s) => s.dirty);
  const canUndo = useStore(editor, (s) => s.canUndo);
  const canRedo = useStore(editor, (s) => s.canRedo);
  const connected = useStore(runtime, (s) => s.connected);
  const remaining = useStore(runtime, (s) => s.queueRemaining);
  const runningJob = useStore(runtime, (s) => s.runningJob);
  const batch = useStore(runtime, (s) => s.batch);
  const setBatch = (n: number) => runtime.set({ batch: n });
  const fileRef = useRef<HTMLInputElement>(null);

  return (
    <header className="ng-toolbar">
      <button className={`ng-icon-btn ${props.paletteOpen ? "active" : ""}`} onClick={props.togglePalette} title="Node palette" aria-label="Toggle palette">
        <svg viewBox="0 0 16 16" width="16" height="16"><path d="M2 3h12M2 8h12M2 13h12" stroke="currentColor" strokeWidth="1.6" strokeLinecap="round" /></svg>
      </button>
      <div className="ng-brand">
        <svg viewBox="0 0 32 32" width="20" height="20" aria-hidden>
          <circle cx="9" cy="11" r="4" fill="#64b5f6" />
          <circle cx="23" cy="21" r="4" fill="#ff9cf9" />
          <path d="M13 11c6 0 4 10 6 10" stroke="#9aa4b1" strokeWidth="2" fill="none" />
        </svg>
        nodegraph
      </div>
      <Menu label="Workflow" testid="menu-workflow">
        {(close) => (
          <>
            <button className="ng-menu-item" onClick={() => (close(), newTab())}>New</button>
            <button className="ng-menu-item" onClick={() => (close(), fileRef.current?.click())}>
              Open… <span className="ng-kbd">JSON · PNG · ComfyUI</span>
            </button>
            <button className="ng-menu-item" data-testid="menu-save" onClick={() => (close(), saveWorkflow(props.viewport()))}>
              Save <span className="ng-kbd">Ctrl+S</span>
            </button>
            <div className="ng-menu-head">Export</div>
            <button className="ng-menu-item" data-testid="menu-export-comfyui" onClick={() => (close(), exportComfyUI(props.viewport()))}>ComfyUI workflow (.json)</button>
            <button className="ng-menu-item" data-testid="menu-export-api" onClick={() => (close(), void exportComfyApi())}>ComfyUI API (.json)</button>
            <div className="ng-menu-sep" />
            <div className="ng-menu-head">Examples</div>
            <Examples close={close} />
          </>
        )}
      </Menu>
      <input
        ref={fileRef}
        type="file"
        accept=".json,.png,application/json,image/png"
        hidden
        data-testid="open-file"
        onChange={(e) => {
          const f = e.target.files?.[0];
          if (f) void openFile(f);
          e.target.value = "";
        }}
      />
      <div className="ng-docname" title={dirty ? "unsaved changes (kept in this browser)" : "saved"}>
        <input
          value={name}
          aria-label="Workflow name"
          spellCheck={false}
          onChange={(e) => editor.set({ name: e.target.value })}
          size={Math.max(6, name.length + 1)}
        />
        {dirty && <span className="ng-dirty" data-testid="dirty">●</span>}
      </div>
      <div className="ng-sep" />
      <button className="ng-icon-btn" onClick={undo} disabled={!canUndo} title="Undo (Ctrl+Z)" aria-label="Undo" data-testid="undo">
        <svg viewBox="0 0 16 16" width="16" height="16"><path d="M6 4 2.5 7.5 6 11M3 7.5h6.5a4 4 0 0 1 0 8H8" stroke="currentColor" strokeWidth="1.6" fill="none" strokeLinecap="round" strokeLinejoin="round" /></svg>
      </button>
      <button className="ng-icon-btn" onClick={redo} disabled={!canRedo} title="Redo (Ctrl+Y)" aria-label="Redo" data-testid="redo">
        <svg viewBox="0 0 16 16" width="16" height="16"><path d="M10 4l3.5 3.5L10 11M13 7.5H6.5a4 4 0 0 0 0 8H8" stroke="currentColor" strokeWidth="1.6" fill="none" strokeLinecap="round" strokeLinejoin="round" /></svg>
      </button>
      <button className="ng-icon-btn" onClick={props.onFit} title="Fit to view (.)" aria-label="Fit to view">
        <svg viewBox="0 0 16 16" width="16" height="16"><path d="M2 6V2h4M10 2h4v4M14 10v4h-4M6 14H2v-4" stroke="currentColor" strokeWidth="1.6" fill="none" strokeLinecap="round" /></svg>
      </button>
      <button className="ng-icon-btn" onClick={props.onGroup} title="Group selected nodes (Ctrl+G)" aria-label="Add group">
        <svg viewBox="0 0 16 16" width="16" height="16"><rect x="2" y="3" width="12" height="10" rx="1.5" stroke="currentColor" strokeWidth="1.5" fill="none" /><path d="M2 6h12" stroke="currentColor" strokeWidth="1.5" /></svg>
      </button>
      <div className="ng-spacer" />
      <div className={`ng-conn ${connected ? "on" : "off"}`} title={connected ? "connected to the server" : "not connected: retrying"}>
        <i />
        {connected ? (remaining ? `${remaining} in queue` : "idle") : "offline"}
      </div>
      <label className="ng-batch" title="Batch count: how many times to queue">
        <span>×</span>
        <input
          type="number"
          min={1}
          max={100}
          value={batch}
          aria-label="Batch count"
          data-testid="batch-count"
          onChange={(e) => setBatch(Math.max(1, Math.min(100, Number(e.target.value) || 1)))}
        />
      </label>
      <button className="ng-btn ng-btn-primary" onClick={() => void queueWorkflow(batch)} title="Queue (Ctrl+Enter)" data-testid="queue-button">
        <svg viewBox="0 0 16 16" width="13" height="13"><path d="M4 2.5v11l9-5.5z" fill="currentColor" /></svg>
        Queue
      </button>
      <button className="ng-btn ng-btn-danger" onClick={() => void interrupt()} disabled={!runningJob && !remaining} title="Interrupt the running job" data-testid="interrupt">
        <svg viewBox="0 0 16 16" width="11" height="11"><rect x="3" y="3" width="10" height="10" rx="1.5" fill="currentColor" /></svg>
      </button>
      <button className={`ng-icon-btn ${props.panelOpen ? "active" : ""}`} onClick={props.togglePanel} title="Queue, history and gallery" aria-label="Toggle side panel" data-testid="toggle-panel">
        <svg viewBox="0 0 16 16" width="16" height="16"><rect x="2" y="2.5" width="12" height="11" rx="1.5" stroke="currentColor" strokeWidth="1.5" fill="none" /><path d="M10 2.5v11" stroke="currentColor" strokeWidth="1.5" /></svg>
      </button>
    </header>
  );
}
