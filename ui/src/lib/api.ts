// The server's native HTTP API under /v1 (route table in nodegraph/server/app.py). Routes, bodies and
// replies are typed from the generated OpenAPI types (scripts/gen-types.mjs), so a route or body the
// server does not have fails the type check. Errors come back as ApiError with the server's body.
import type { components, paths } from "../generated/api";
import { NativeWorkflow } from "./workflow";

type Schemas = components["schemas"];
export type ValidationError = Schemas["Issue"];
export type Job = Native<Schemas["JobOut"]>;
export type Cluster = Schemas["ClusterOut"];
export type ClusterWorker = Schemas["ClusterWorkerOut"];

export interface ImageRef {
  filename: string;
  subfolder?: string;
  type?: string;
}

export const jobId = (j: Job): string => j.job_id;

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

type Method = "get" | "post" | "delete";
type JsonOf<T> = T extends { content: { "application/json": infer B } } ? B : never;
type Operation<P extends keyof paths, M extends Method> = paths[P][M];
/** The JSON body a route takes, and the JSON it answers with (status 200). */
export type Body<P extends keyof paths, M extends Method> = Operation<P, M> extends { requestBody?: infer B } ? JsonOf<NonNullable<B>> : never;
export type Reply<P extends keyof paths, M extends Method> = Operation<P, M> extends { responses: { 200: infer R } } ? Native<JsonOf<R>> : never;
/** Replies carry workflows as native JSON (the server converts every format when it takes one in), which
 * the schema can only declare as an object: give them the editor's workflow type. */
type Native<T> = T extends { workflow: unknown }
  ? Omit<T, "workflow"> & { workflow: NativeWorkflow }
  : T extends (infer U)[]
    ? Native<U>[]
    : T extends Record<string, unknown>
      ? { [K in keyof T]: Native<T[K]> }
      : T;

interface CallOptions<P extends keyof paths, M extends Method> {
  params?: Record<string, string>; // fills the route's {placeholders}
  query?: Record<string, string | number>;
  body?: Body<P, M>;
  form?: FormData;
}

/** One call of a documented route: `route` must be a path of the OpenAPI document, `method` one of its operations. */
function call<P extends keyof paths, M extends Method>(method: M, route: P, opts: CallOptions<P, M> = {}): Promise<Reply<P, M>> {
  let url = String(route).replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(opts.params?.[name] ?? ""));
  if (opts.query) url += `?${new URLSearchParams(Object.entries(opts.query).map(([k, v]) => [k, String(v)]))}`;
  return request<Reply<P, M>>(method.toUpperCase(), url, opts.body, opts.form);
}

export const api = {
  nodes: () => call("get", "/v1/nodes"),
  queueJob: (workflow: NativeWorkflow, clientId: string, number?: number, extra?: Record<string, unknown>) =>
    call("post", "/v1/jobs", { body: { workflow: asBody(workflow), client_id: clientId, ...(number ? { number } : {}), ...(extra ? { extra } : {}) } }),
  queue: () => call("get", "/v1/queue"),
  cancel: (id: string) => call("delete", "/v1/queue/{job_id}", { params: { job_id: id } }),
  clearQueue: () => call("post", "/v1/queue/clear"),
  interrupt: () => call("post", "/v1/interrupt"),
  history: (offset = 0, limit = 20) => call("get", "/v1/history", { query: { offset, limit } }),
  job: (id: string) => call("get", "/v1/jobs/{job_id}", { params: { job_id: id } }),
  models: (folder: string) => call("get", "/v1/models/{folder}", { params: { folder } }),
  modelInfo: (folder: string, name: string) => call("get", "/v1/models/{folder}/info", { params: { folder }, query: { name } }),
  upload: (file: File | Blob, name?: string) => {
    const form = new FormData();
    form.append("image", file, name ?? (file as File).name ?? "upload.png");
    return call("post", "/v1/upload/image", { form });
  },
  convert: (workflow: unknown) => call("post", "/v1/convert", { body: { workflow: asBody(workflow) } }),
  exportApi: (workflow: NativeWorkflow) => call("post", "/v1/export/comfy_api", { body: { workflow: asBody(workflow) } }),
  validate: (workflow: NativeWorkflow) => call("post", "/v1/validate", { body: { workflow: asBody(workflow) } }),
  workflows: () => call("get", "/v1/workflows"),
  cluster: () => call("get", "/v1/cluster"),
  workflow: async (name: string) => (await call("get", "/v1/workflows/{name}", { params: { name } })) as unknown as NativeWorkflow,
};

/** Workflow bodies are declared as any JSON object (the server reads every format). */
const asBody = (workflow: unknown) => workflow as Record<string, unknown>;

export function viewUrl(img: ImageRef): string {
  const p = new URLSearchParams({ filename: img.filename, subfolder: img.subfolder ?? "", type: img.type ?? "output" });
  return `${apiBase}/v1/view?${p}`; // an <img> URL: not fetched through `call`
}

/** Model lists may come as a list or wrapped in an object. */
export function modelNames(r: string[] | { files?: string[]; models?: string[] }): string[] {
  if (Array.isArray(r)) return r.map((x) => (typeof x === "string" ? x : String((x as { name?: string }).name ?? x)));
  return r.files ?? r.models ?? [];
}
