// The server's HTTP API (see the route list in nodegraph/server). Every call goes through `request`,
// so errors come back as ApiError with the server's structured body.
import { SchemaMap } from "./schema";
import { NativeWorkflow } from "./workflow";

export interface ValidationError {
  kind: string;
  message: string;
  node?: string | null;
  node_type?: string | null;
  input?: string | null;
}

export interface ImageRef {
  filename: string;
  subfolder?: string;
  type?: string;
}

export interface Job {
  id?: string;
  job_id?: string;
  status?: string;
  created?: number | string;
  created_at?: number | string;
  started_at?: number | string;
  finished_at?: number | string;
  number?: number;
  error?: unknown;
  outputs?: Record<string, { images?: ImageRef[] } | unknown>;
  workflow?: NativeWorkflow;
  [key: string]: unknown;
}

export const jobId = (j: Job): string => String(j.id ?? j.job_id ?? j.prompt_id ?? "");

export class ApiError extends Error {
  constructor(public status: number, message: string, public body: unknown) {
    super(message);
  }
  get errors(): ValidationError[] {
    const b = this.body as { errors?: ValidationError[]; detail?: unknown } | null;
    if (b && Array.isArray(b.errors)) return b.errors;
    const d = b?.detail as { errors?: ValidationError[] } | undefined;
    if (d && Array.isArray(d.errors)) return d.errors;
    return [];
  }
}

export let apiBase = "";
export function setApiBase(base: string) {
  apiBase = base.replace(/\/$/, "");
}

async function request<T>(method: string, path: string, body?: unknown, raw?: BodyInit): Promise<T> {
  const init: RequestInit = { method, headers: {} };
  if (raw !== undefined) init.body = raw;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)["Content-Type"] = "application/json";
  }
  const res = await fetch(`${apiBase}${path}`, init);
  const text = await res.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!res.ok) {
    const d = data as { detail?: unknown; message?: string; error?: unknown } | null;
    let msg = `${method} ${path}: HTTP ${res.status}`;
    if (d && typeof d === "object") {
      const detail = typeof d.detail === "string" ? d.detail : d.message ?? (typeof d.error === "string" ? d.error : undefined);
      if (detail) msg = detail;
    } else if (typeof data === "string" && data) msg = data.slice(0, 200);
    throw new ApiError(res.status, msg, data);
  }
  return data as T;
}

const q = (s: string) => encodeURIComponent(s);

export const api = {
  nodes: () => request<SchemaMap>("GET", "/v1/nodes"),
  queueJob: (workflow: NativeWorkflow, clientId: string, number?: number) =>
    request<{ job_id: string; number?: number }>("POST", "/v1/jobs", { workflow, client_id: clientId, ...(number ? { number } : {}) }),
  queue: () => request<{ running: Job[]; pending: Job[]; paused?: boolean }>("GET", "/v1/queue"),
  cancel: (id: string) => request<unknown>("DELETE", `/v1/queue/${q(id)}`),
  clearQueue: () => request<unknown>("POST", "/v1/queue/clear"),
  interrupt: () => request<unknown>("POST", "/v1/interrupt"),
  history: (offset = 0, limit = 20) => request<{ items: Job[]; total: number }>("GET", `/v1/history?offset=${offset}&limit=${limit}`),
  job: (id: string) => request<Job>("GET", `/v1/jobs/${q(id)}`),
  models: (folder: string) => request<string[] | { files?: string[]; models?: string[] }>("GET", `/v1/models/${q(folder)}`),
  upload: (file: File | Blob, name?: string) => {
    const form = new FormData();
    form.append("image", file, name ?? (file as File).name ?? "upload.png");
    return request<ImageRef & { name: string }>("POST", "/v1/upload/image", undefined, form);
  },
  convert: (workflow: unknown) => request<{ workflow: NativeWorkflow }>("POST", "/v1/convert", { workflow }),
  exportApi: (workflow: NativeWorkflow) => request<Record<string, unknown>>("POST", "/v1/export/comfy_api", { workflow }),
  validate: (workflow: NativeWorkflow) => request<{ ok: boolean; errors: ValidationError[] }>("POST", "/v1/validate", { workflow }),
  workflows: () => request<(string | { name: string })[]>("GET", "/v1/workflows"),
  workflow: (name: string) => request<NativeWorkflow>("GET", `/v1/workflows/${q(name)}`),
};

export function viewUrl(img: ImageRef): string {
  const p = new URLSearchParams({ filename: img.filename, subfolder: img.subfolder ?? "", type: img.type ?? "output" });
  return `${apiBase}/v1/view?${p}`;
}

/** Model lists may come as a list or wrapped in an object. */
export function modelNames(r: string[] | { files?: string[]; models?: string[] }): string[] {
  if (Array.isArray(r)) return r.map((x) => (typeof x === "string" ? x : String((x as { name?: string }).name ?? x)));
  return r.files ?? r.models ?? [];
}
