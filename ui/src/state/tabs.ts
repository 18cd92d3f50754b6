// Workflow tabs, as ComfyUI's: each tab is its own document with its own autosave slot, undo log and
// dirty marker. Slots are keyed by tab id, so one tab never overwrites another; the list of tabs (and
// which one is active) is kept per browser tab (sessionStorage, for reloads) and as the latest list
// (localStorage, for a new browser tab). A new browser tab also re-opens unsaved slots that no list
// names any more, so closing two browser tabs one after the other loses neither's unsaved work.
import { NativeWorkflow } from "../lib/workflow";
import { detectFormat } from "../lib/comfy";
import { createStore } from "./store";
import { OpenDocument, currentWorkflow, editor, freshDocument, loadDocument, putDocument, takeDocument } from "./editor";

export interface TabInfo {
  id: string;
  name: string;
  dirty: boolean;
}

interface SlotDoc {
  name: string;
  dirty: boolean;
  workflow: NativeWorkflow;
}

type Viewport = { x: number; y: number; zoom: number };

export const SLOT_PREFIX = "nodegraph:tab:";
const INDEX = "nodegraph:tabs";
const LEGACY = "nodegraph:autosave";

export const tabs = createStore<{ list: TabInfo[]; active: string }>({ list: [], active: "" });

/** Documents of the tabs not on the canvas (the active one lives in the editor store). */
const parked = new Map<string, OpenDocument>();
let getViewport: () => Viewport | undefined = () => undefined;

const newId = () => `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 7)}`;

function readSlot(id: string): SlotDoc | null {
  try {
    const saved = JSON.parse(localStorage.getItem(SLOT_PREFIX + id) ?? "null") as SlotDoc | null;
    return saved?.workflow && detectFormat(saved.workflow) === "native" ? saved : null;
  } catch {
    return null;
  }
}

function writeSlot(id: string, doc: SlotDoc) {
  try {
    localStorage.setItem(SLOT_PREFIX + id, JSON.stringify(doc));
  } catch {
    /* quota: nothing to do */
  }
}

function writeIndex() {
  const { list, active } = tabs.get();
  const index = JSON.stringify({ order: list.map((t) => t.id), active });
  sessionStorage.setItem(INDEX, index);
  localStorage.setItem(INDEX, index);
}

/** Save the active tab into its slot (the autosave). */
export function saveActive() {
  const s = editor.get();
  const { active } = tabs.get();
  if (!s.schemasLoaded || !active) return;
  writeSlot(active, { name: s.name, dirty: s.dirty, workflow: currentWorkflow(getViewport()) });
}

function syncActiveInfo() {
  const s = editor.get();
  const { list, active } = tabs.get();
  const t = list.find((x) => x.id === active);
  if (t && (t.name !== s.name || t.dirty !== s.dirty))
    tabs.set({ list: list.map((x) => (x.id === active ? { ...x, name: s.name, dirty: s.dirty } : x)) });
}

export function switchTab(id: string) {
  syncActiveInfo(); // the tab being left keeps its latest name and dirty mark
  const { active, list } = tabs.get();
  if (id === active || !list.some((t) => t.id === id)) return;
  saveActive();
  parked.set(active, takeDocument(getViewport()));
  const next = parked.get(id) ?? fromSlot(id);
  parked.delete(id);
  tabs.set({ active: id });
  putDocument(next);
  writeIndex();
}

function fromSlot(id: string): OpenDocument {
  const saved = readSlot(id);
  return saved ? freshDocument(saved.workflow, saved.name || "Untitled", saved.dirty) : freshDocument(null, "Untitled");
}

/** A new tab with a document (or an empty one), made active. */
export function newTab(doc: NativeWorkflow | null = null, name = "Untitled", dirty = false): string {
  const id = newId();
  syncActiveInfo(); // the tab being left keeps its latest name and dirty mark
  const { active, list } = tabs.get();
  if (active) {
    saveActive();
    parked.set(active, takeDocument(getViewport()));
  }
  const d = freshDocument(doc, name, dirty); // (after the active one is taken off: it sets up its subgraphs)
  const at = list.findIndex((t) => t.id === active);
  const next = [...list];
  next.splice(at < 0 ? next.length : at + 1, 0, { id, name, dirty });
  tabs.set({ list: next, active: id });
  putDocument(d);
  saveActive();
  writeIndex();
  return id;
}

/** Open a document: into the active tab when that is empty and unchanged, else into a new tab. */
export function openInTab(doc: NativeWorkflow, name: string) {
  const s = editor.get();
  const { active } = tabs.get();
  if (active && !s.dirty && s.nodes.length === 0) {
    loadDocument(doc, name);
    saveActive();
  } else newTab(doc, name);
}

/** Close a tab, asking first when it holds unsaved changes; the last tab closed leaves a fresh one. */
export function closeTab(id: string, ask: (message: string) => boolean = (m) => confirm(m)): boolean {
  const { list, active } = tabs.get();
  const t = list.find((x) => x.id === id);
  if (!t) return false;
  const dirty = id === active ? editor.get().dirty : t.dirty;
  if (dirty && !ask(`“${t.name}” has unsaved changes. Close it and lose them?`)) return false;
  const k = list.indexOf(t);
  const rest = list.filter((x) => x.id !== id);
  parked.delete(id);
  localStorage.removeItem(SLOT_PREFIX + id);
  if (id !== active) {
    tabs.set({ list: rest });
    writeIndex();
    return true;
  }
  if (!rest.length) {
    tabs.set({ list: [], active: "" });
    newTab();
    return true;
  }
  const next = rest[Math.min(k, rest.length - 1)];
  const d = parked.get(next.id) ?? fromSlot(next.id);
  parked.delete(next.id);
  tabs.set({ list: rest, active: next.id });
  putDocument(d);
  writeIndex();
  return true;
}

function readIndex(raw: string | null): { order: string[]; active: string } | null {
  try {
    const v = JSON.parse(raw ?? "null");
    return v && Array.isArray(v.order) ? { order: v.order.map(String), active: String(v.active ?? "") } : null;
  } catch {
    return null;
  }
}

function allSlotIds(): string[] {
  const out: string[] = [];
  for (let k = 0; k < localStorage.length; k++) {
    const key = localStorage.key(k);
    if (key?.startsWith(SLOT_PREFIX)) out.push(key.slice(SLOT_PREFIX.length));
  }
  return out;
}

/** Put back the tabs of before the reload (or of the last browser tab); always leaves one open. */
export function restoreTabs(viewport: () => Viewport | undefined) {
  getViewport = viewport;
  const session = readIndex(sessionStorage.getItem(INDEX));
  const index = session ?? readIndex(localStorage.getItem(INDEX)) ?? { order: [], active: "" };
  const order = index.order.filter((id) => readSlot(id));
  if (!session) {
    // unsaved work of browser tabs closed since: slots no list names
    for (const id of allSlotIds()) if (!order.includes(id) && readSlot(id)?.dirty) order.push(id);
    const legacy = localStorage.getItem(LEGACY);
    if (legacy) {
      const id = newId();
      try {
        const saved = JSON.parse(legacy) as SlotDoc;
        if (saved.workflow && (saved.dirty || Object.keys(saved.workflow.nodes ?? {}).length)) {
          writeSlot(id, saved);
          order.push(id);
        }
      } catch {
        /* unreadable: dropped */
      }
      localStorage.removeItem(LEGACY);
    }
  }
  if (!order.length) {
    newTab();
  } else {
    const list = order.map((id) => {
      const s = readSlot(id)!;
      return { id, name: s.name || "Untitled", dirty: Boolean(s.dirty) };
    });
    const active = order.includes(index.active) ? index.active : order[order.length - 1];
    tabs.set({ list, active });
    putDocument(fromSlot(active));
    writeIndex();
  }
  editor.subscribe(syncActiveInfo);
}
