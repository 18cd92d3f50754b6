// The server's websocket (/v1/ws): JSON text frames {type, data}, and binary msgpack preview frames.
// Their types are generated from the server's event models (nodegraph/server/schemas.py).
import { decode } from "@msgpack/msgpack";
import type { components } from "../generated/api";

/** Every text frame the server sends, as a union discriminated by `type`. */
export type ServerEvent = components["schemas"]["ServerEvent"];

/** A preview frame as decoded here: the schema's PNG bytes arrive as a Uint8Array. */
export type PreviewEvent = Omit<components["schemas"]["PreviewFrame"], "image" | "node" | "prompt_id"> & {
  prompt_id?: string;
  node: string;
  image: Uint8Array;
};

/** A text frame; events this editor does not know yet (a newer server) still pass as {type, data}. */
export function parseText(frame: string): ServerEvent | null {
  try {
    const m = JSON.parse(frame);
    if (m && typeof m.type === "string") return { type: m.type, data: m.data ?? {} } as ServerEvent;
  } catch {
    /* not ours */
  }
  return null;
}

/** A binary frame: msgpack {"type":"preview","prompt_id","node","image": bytes}. */
export function parseBinary(frame: ArrayBuffer | Uint8Array): PreviewEvent | null {
  try {
    const m = decode(frame instanceof Uint8Array ? frame : new Uint8Array(frame)) as Record<string, unknown>;
    if (m && m.type === "preview" && m.image instanceof Uint8Array)
      return { type: "preview", prompt_id: m.prompt_id as string | undefined, node: String(m.node), image: m.image };
  } catch {
    /* ignore */
  }
  return null;
}

export type Listener = (e: ServerEvent | PreviewEvent) => void;

/** Connects, reconnects with back-off, and hands every event to the listener. */
export class EventSocket {
  private ws: WebSocket | null = null;
  private closed = false;
  private delay = 500;
  connected = false;
  onStatus: (connected: boolean) => void = () => {};

  constructor(private url: string, private listener: Listener) {}

  open(): void {
    this.closed = false;
    const ws = new WebSocket(this.url);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      this.delay = 500;
      this.connected = true;
      this.onStatus(true);
    };
    ws.onmessage = (ev) => {
      const e = typeof ev.data === "string" ? parseText(ev.data) : parseBinary(ev.data as ArrayBuffer);
      if (e) this.listener(e);
    };
    ws.onclose = () => {
      this.connected = false;
      this.onStatus(false);
      if (!this.closed) setTimeout(() => this.open(), this.delay);
      this.delay = Math.min(this.delay * 2, 5000);
    };
    this.ws = ws;
  }

  close(): void {
    this.closed = true;
    this.ws?.close();
  }
}
