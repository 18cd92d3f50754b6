// Queueing the graph, and the queue's commands.
import { api, ApiError } from "../lib/api";
import { toComfyUI } from "../lib/comfyui";
import type { NativeWorkflow } from "../lib/workflow";
import { applySeedControls, currentWorkflow, editor } from "./editor";
import { clientId, refreshQueue, runtime, showValidationErrors, toast } from "./runtime";

let queueing = false;

/** Queue the workflow `count` times; seeds move on after each, as ComfyUI's "control after generate". */
export async function queueWorkflow(count = 1): Promise<boolean> {
  if (queueing) return false;
  if (!editor.get().nodes.some((n) => n.data.kind === "op")) {
    toast("Nothing to run: add some nodes first", "warn");
    return false;
  }
  queueing = true;
  try {
    for (let k = 0; k < Math.max(1, count); k++) {
      try {
        const doc = currentWorkflow();
        // saved PNGs carry the graph in ComfyUI's UI format too ("workflow" chunk), as ComfyUI's frontend sends it
        const ui = toComfyUI(doc, editor.get().schemas);
        // with subgraphs, the server runs the UI document: it expands definitions as ComfyUI's frontend does
        const runnable = doc.ui?.subgraphs ? (ui as unknown as NativeWorkflow) : doc;
        await api.queueJob(runnable, clientId, undefined, { extra_pnginfo: { workflow: ui } });
      } catch (e) {
        if (e instanceof ApiError && e.status === 400) {
          const errors = e.errors;
          showValidationErrors(errors);
          const first = errors[0];
          toast(
            errors.length
              ? `${errors.length === 1 ? "1 problem" : `${errors.length} problems`} in the workflow: ${first.message}`
              : `The server refused the workflow: ${e.message}`,
            "error",
            7000,
          );
        } else toast(`Could not queue: ${(e as Error).message}`, "error");
        return false;
      }
      showValidationErrors([]);
      applySeedControls();
    }
    void refreshQueue();
    return true;
  } finally {
    queueing = false;
  }
}

export async function interrupt() {
  try {
    await api.interrupt();
  } catch (e) {
    toast(`Interrupt failed: ${(e as Error).message}`, "error");
  }
}

export async function cancelJob(id: string) {
  try {
    await api.cancel(id);
  } catch (e) {
    toast(`Cancel failed: ${(e as Error).message}`, "error");
  }
  void refreshQueue();
}

export async function clearQueue() {
  try {
    await api.clearQueue();
  } catch (e) {
    toast(`Clear failed: ${(e as Error).message}`, "error");
  }
  void refreshQueue();
}

export const isBusy = () => runtime.get().queueRemaining > 0;
