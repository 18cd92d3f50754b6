import { describe, expect, it } from "vitest";
import { UiDoc, fromComfyUI, toComfyUI } from "../src/lib/comfyui";
import { apiToNative } from "../src/lib/comfy";
import { fromNative, toNative } from "../src/lib/workflow";
import { isReroute } from "../src/lib/graph";
import { schemas, txt2imgApi } from "./fixtures";

// ComfyUI's frontend (litegraph LGraph.serialize, schema 0.4) keeps reroutes on links in extra.reroutes
// ({id, parentId?, pos, linkIds}) and each link's last reroute in extra.linkExtensions ({id, parentId});
// schema 1 puts reroutes at the top and parentId on the link objects.

const endpoints = (ui: UiDoc, link: number) => {
  const l = ui.links.find((x) => x[0] === link)!;
  return `${l[1]}/${l[2]}->${l[3]}/${l[4]}`;
};

/** extra.reroutes and linkExtensions with link ids replaced by their endpoints (ids may be renumbered). */
function shape(ui: UiDoc) {
  const extra = ui.extra as { reroutes?: { id: number; parentId?: number; pos: number[]; linkIds: number[] }[]; linkExtensions?: { id: number; parentId: number }[] };
  return {
    reroutes: (extra.reroutes ?? []).map((r) => ({ ...r, linkIds: r.linkIds.map((l) => endpoints(ui, l)).sort() })).sort((a, b) => a.id - b.id),
    linkExtensions: (extra.linkExtensions ?? []).map((e) => ({ link: endpoints(ui, e.id), parentId: e.parentId })).sort((a, b) => a.link.localeCompare(b.link)),
  };
}

/** txt2img as ComfyUI saves it, with the two CLIP links through reroute 1 and the VAE link through 2 then 3. */
function withReroutes(): UiDoc {
  const ui = toComfyUI(apiToNative(txt2imgApi), schemas);
  const link = (origin: number, target: number, slot: number) => ui.links.find((l) => l[1] === origin && l[3] === target && l[4] === slot)![0];
  const clipPos = link(4, 6, 0), clipNeg = link(4, 7, 0), vae = link(4, 8, 1);
  ui.extra = {
    ...ui.extra,
    reroutes: [
      { id: 1, pos: [500, 120], linkIds: [clipPos, clipNeg].sort((a, b) => a - b) },
      { id: 2, pos: [600, 300], linkIds: [vae] },
      { id: 3, parentId: 2, pos: [760, 300], linkIds: [vae] },
    ],
    linkExtensions: [{ id: clipPos, parentId: 1 }, { id: clipNeg, parentId: 1 }, { id: vae, parentId: 3 }],
  };
  return ui;
}

describe("ComfyUI reroutes on links", () => {
  it("become editor reroutes on the link's way, and the links still run from node to node", () => {
    const native = fromComfyUI(withReroutes() as unknown as Record<string, unknown>, schemas);
    expect(native.ui!.reroutes).toEqual([
      { id: "lr1", pos: [492, 112], comfy_reroute: 1 },
      { id: "lr2", pos: [592, 292], comfy_reroute: 2 },
      { id: "lr3", pos: [752, 292], comfy_reroute: 3 },
    ]);
    expect(native.ui!.reroute_links).toEqual(expect.arrayContaining([
      { source: "4", output: "CLIP", target: "lr1", input: "in" },
      { source: "lr1", output: "out", target: "6", input: "clip" },
      { source: "lr1", output: "out", target: "7", input: "clip" },
      { source: "4", output: "VAE", target: "lr2", input: "in" },
      { source: "lr2", output: "out", target: "lr3", input: "in" },
      { source: "lr3", output: "out", target: "8", input: "vae" },
    ]));
    expect((native.ui!.reroute_links as unknown[]).length).toBe(6); // the shared hop into lr1 once
    expect(native.nodes["8"].inputs.vae).toEqual({ node: "4", output: "VAE" });
    expect(native.nodes["7"].inputs.clip).toEqual({ node: "4", output: "CLIP" });
  });

  it("are saved back as ComfyUI wrote them, through the editor", () => {
    const original = withReroutes();
    const g = fromNative(fromComfyUI(original as unknown as Record<string, unknown>, schemas), schemas);
    expect(g.nodes.filter(isReroute).map((n) => n.data.comfyReroute)).toEqual([1, 2, 3]);
    const back = toComfyUI(toNative(g, schemas), schemas);
    expect(shape(back)).toEqual(shape(original));
    // no Reroute nodes: the links go straight from the loader to the nodes
    expect(back.nodes.some((n) => n.type === "Reroute")).toBe(false);
    expect(back.links.filter((l) => l[1] === 4).map((l) => `${l[3]}/${l[4]}`).sort()).toEqual(
      original.links.filter((l) => l[1] === 4).map((l) => `${l[3]}/${l[4]}`).sort());
  });

  it("read schema 1's shape too (top-level reroutes, parentId on link objects)", () => {
    const v04 = withReroutes();
    const extra = v04.extra as { reroutes: unknown[]; linkExtensions: { id: number; parentId: number }[] };
    const parent = new Map(extra.linkExtensions.map((e) => [e.id, e.parentId]));
    const v1 = {
      ...v04, version: 1, extra: { ds: v04.extra.ds }, reroutes: extra.reroutes,
      links: v04.links.map(([id, o, os, t, ts, type]) => ({ id, origin_id: o, origin_slot: os, target_id: t, target_slot: ts, type, ...(parent.has(id) ? { parentId: parent.get(id) } : {}) })),
    };
    expect(fromComfyUI(v1, schemas)).toEqual(fromComfyUI(v04 as unknown as Record<string, unknown>, schemas));
  });

  it("a pasted copy of a reroute gets a fresh ComfyUI id", () => {
    const native = fromComfyUI(withReroutes() as unknown as Record<string, unknown>, schemas);
    (native.ui!.reroutes as unknown[]).push({ id: "lr9", pos: [0, 0], comfy_reroute: 1 });
    const ids = (toComfyUI(native, schemas).extra.reroutes as { id: number }[]).map((r) => r.id);
    expect(ids).toEqual([1, 2, 3, 4]);
  });
});
