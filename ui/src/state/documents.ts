// Opening, saving, importing and exporting workflows, and the autosave that survives reloads.
import { api, ApiError } from "../lib/api";
import { apiToNative, detectFormat, nativeToApi, unwrapApi } from "../lib/comfy";
import { editorCanImport, fromComfyUI, toComfyUI } from "../lib/comfyui";
import { embeddedWorkflow, isPng, readPngText } from "../lib/png";
import { NativeWorkflow } from "../lib/workflow";
import { currentWorkflow, editor, markSaved, setSchemas } from "./editor";
import { openInTab, restoreTabs, saveActive } from "./tabs";
import { clearAllRuns, toast } from "./runtime";

/** Any supported document as native JSON: native as is, ComfyUI formats through the server. */
export async function toNativeDoc(data: unknown): Promise<NativeWorkflow> {
  const kind = detectFormat(data);
  if (kind === "native") return data as NativeWorkflow;
  if (kind === null) throw new Error("this is not a workflow (expected nodegraph or ComfyUI JSON)");
  // a UI document the editor can show as it is keeps its notes, reroutes and seed controls
  const { schemas } = editor.get();
  if (kind === "comfy_ui" && editorCanImport(data as Record<string, unknown>, schemas)) return fromComfyUI(data as Record<string, unknown>, schemas);
  try {
    return (await api.convert(data)).workflow;
  } catch (e) {
    // API format converts without the server's help; the UI format needs it
    if (kind === "comfy_api" && !(e instanceof ApiError && e.status === 400)) return apiToNative(unwrapApi(data as Record<string, unknown>));
    throw e;
  }
}

/** Where JSON.parse stopped, as "line L, column C: reason" (browsers word and place it differently). */
export function jsonProblem(text: string, e: Error): string {
  const msg = e.message ?? String(e);
  let line: number | undefined;
  let column: number | undefined;
  const lc = /line (\d+) column (\d+)/i.exec(msg);
  const pos = /position (\d+)/i.exec(msg);
  if (lc) [line, column] = [Number(lc[1]), Number(lc[2])];
  else if (pos) {
    const before = text.slice(0, Number(pos[1]));
    line = before.split("\n").length;
    column = before.length - before.lastIndexOf("\n");
  } else if (/end of (JSON|data) input|Unexpected end/i.test(msg)) {
    const lines = text.split("\n");
    line = lines.length;
    column = lines[lines.length - 1].length + 1;
  }
  const reason = msg.replace(/^JSON\.parse: /, "").replace(/\s*(in JSON )?at position \d+.*$/s, "").replace(/\s*\(line \d+ column \d+\)/, "");
  return line !== undefined ? `line ${line}, column ${column}: ${reason}` : reason;
}

const stem = (name: string) => name.replace(/\.(json|png)$/i, "");

export async function openFile(file: File): Promise<boolean> {
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    let data: unknown;
    if (isPng(bytes)) {
      const found = embeddedWorkflow(await readPngText(bytes));
      if (!found) {
        toast(`${file.name} holds no workflow`, "warn");
        return false;
      }
      data = found.data;
    } else {
      const text = new TextDecoder().decode(bytes);
      try {
        data = JSON.parse(text);
      } catch (e) {
        toast(`${file.name} is not valid JSON (nor a PNG): ${jsonProblem(text, e as Error)}`, "error", 9000);
        return false;
      }
    }
    const doc = await toNativeDoc(data);
    clearAllRuns();
    openInTab(doc, stem(file.name));
    toast(`Loaded ${file.name}`, "success", 2500);
    return true;
  } catch (e) {
    toast(`Could not load ${file.name}: ${(e as Error).message}`, "error", 7000);
    return false;
  }
}

export async function openExample(name: string) {
  try {
    const doc = await api.workflow(name);
    // opening it put its pictures in the input folder: refresh the file choices before showing it
    setSchemas(await api.nodes());
    clearAllRuns();
    openInTab(doc, stem(name));
  } catch (e) {
    toast(`Could not load ${name}: ${(e as Error).message}`, "error");
  }
}

function download(name: string, text: string) {
  const url = URL.createObjectURL(new Blob([text], { type: "application/json" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function saveWorkflow(viewport?: { x: number; y: number; zoom: number }) {
  const name = editor.get().name || "workflow";
  download(`${name}.json`, JSON.stringify(currentWorkflow(viewport), null, 2));
  markSaved();
}

/** Export → ComfyUI workflow: the UI-format document ComfyUI's frontend opens. */
export function exportComfyUI(viewport?: { x: number; y: number; zoom: number }) {
  const s = editor.get();
  const doc = toComfyUI(currentWorkflow(viewport), s.schemas, { id: crypto.randomUUID?.() });
  download(`${s.name || "workflow"}.comfyui.json`, JSON.stringify(doc, null, 2));
}

export async function exportComfyApi() {
  const s = editor.get();
  const doc = currentWorkflow();
  let prompt: unknown;
  try {
    // subgraphs: the server flattens the UI document as ComfyUI's frontend does for its API format
    prompt = await api.exportApi(doc.ui?.subgraphs ? (toComfyUI(doc, s.schemas) as unknown as NativeWorkflow) : doc);
  } catch (e) {
    if (e instanceof ApiError && e.status === 400) {
      toast(`Export failed: ${e.message}`, "error");
      return;
    }
    prompt = nativeToApi(doc, s.schemas);
  }
  download(`${s.name || "workflow"}.api.json`, JSON.stringify(prompt, null, 2));
}

// --- autosave: one slot per workflow tab (state/tabs.ts) ------------------------------------------

let timer: ReturnType<typeof setTimeout> | null = null;

/** Put back the tabs of before the reload; true when a document with nodes is on the canvas. */
export function restoreAutosave(viewport: () => { x: number; y: number; zoom: number } | undefined = () => undefined): boolean {
  restoreTabs(viewport);
  return editor.get().nodes.length > 0;
}

export function startAutosave() {
  let last = editor.get();
  editor.subscribe(() => {
    const s = editor.get();
    if (s.nodes === last.nodes && s.edges === last.edges && s.name === last.name && s.dirty === last.dirty) return;
    last = s;
    if (timer) clearTimeout(timer);
    timer = setTimeout(writeAutosave, 400);
  });
  addEventListener("beforeunload", writeAutosave);
}

export function writeAutosave() {
  saveActive();
}
