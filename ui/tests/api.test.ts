import { afterEach, describe, expect, it, vi } from "vitest";
import { encode } from "@msgpack/msgpack";
import { api, ApiError, viewUrl, modelNames } from "../src/lib/api";
import { parseBinary, parseText } from "../src/lib/events";

/** A tiny stand-in for the server's HTTP routes. */
function mockServer(routes: Record<string, (body: unknown) => [number, unknown]>) {
  const calls: { method: string; url: string; body: unknown }[] = [];
  vi.stubGlobal("fetch", async (url: string, init: RequestInit) => {
    const method = init.method ?? "GET";
    const body = typeof init.body === "string" ? JSON.parse(init.body) : init.body;
    calls.push({ method, url, body });
    const handler = routes[`${method} ${url.split("?")[0]}`];
    const [status, data] = handler ? handler(body) : [404, { detail: "Not Found" }];
    return new Response(JSON.stringify(data), { status, headers: { "Content-Type": "application/json" } });
  });
  return calls;
}

afterEach(() => vi.unstubAllGlobals());

describe("HTTP client", () => {
  it("queues a job and returns its id", async () => {
    const calls = mockServer({ "POST /v1/jobs": () => [200, { job_id: "j1", number: 0 }] });
    const r = await api.queueJob({ version: 1, nodes: {} }, "client-1");
    expect(r.job_id).toBe("j1");
    expect(calls[0].body).toEqual({ workflow: { version: 1, nodes: {} }, client_id: "client-1" });
  });

  it("hands back validation errors in structured form", async () => {
    const errors = [{ kind: "bad_value", message: "width must be at least 1", node: "1", node_type: "EmptyImage", input: "width" }];
    mockServer({ "POST /v1/jobs": () => [400, { errors }] });
    const err = await api.queueJob({ version: 1, nodes: {} }, "c").catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(400);
    expect(err.errors).toEqual(errors);
    // FastAPI's HTTPException wraps bodies in "detail"
    mockServer({ "POST /v1/jobs": () => [400, { detail: { errors } }] });
    expect((await api.queueJob({ version: 1, nodes: {} }, "c").catch((e) => e)).errors).toEqual(errors);
  });

  it("builds view URLs and reads model lists of either shape", () => {
    expect(viewUrl({ filename: "a b.png", subfolder: "", type: "output" })).toBe("/v1/view?filename=a+b.png&subfolder=&type=output");
    expect(modelNames(["a", "b"])).toEqual(["a", "b"]);
    expect(modelNames({ files: ["c"] })).toEqual(["c"]);
  });
});

describe("websocket frames", () => {
  it("parses JSON events", () => {
    expect(parseText('{"type":"progress","data":{"node":"3","value":2,"max":10,"prompt_id":"j"}}')).toEqual({
      type: "progress",
      data: { node: "3", value: 2, max: 10, prompt_id: "j" },
    });
    expect(parseText("nonsense")).toBeNull();
  });
  it("decodes msgpack preview frames", () => {
    const image = new Uint8Array([137, 80, 78, 71]);
    const frame = encode({ type: "preview", prompt_id: "j", node: "3", image });
    const e = parseBinary(frame)!;
    expect(e.node).toBe("3");
    expect(Array.from(e.image)).toEqual([137, 80, 78, 71]);
    expect(parseBinary(encode({ type: "other" }))).toBeNull();
  });
});
