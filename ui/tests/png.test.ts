import { describe, expect, it } from "vitest";
import { deflateSync } from "node:zlib";
import { readPngText, embeddedWorkflow, makeChunk, addTextChunks, crc32, isPng } from "../src/lib/png";
import { readFixture, imageBasics } from "./fixtures";

/** A syntactically complete PNG (signature, IHDR, IDAT, IEND) plus the given chunks. */
function png(...extra: Uint8Array[]): Uint8Array {
  const ihdr = new Uint8Array(13);
  new DataView(ihdr.buffer).setUint32(0, 1);
  new DataView(ihdr.buffer).setUint32(4, 1);
  ihdr[8] = 8;
  ihdr[9] = 2;
  const parts = [
    new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]),
    makeChunk("IHDR", ihdr),
    ...extra,
    makeChunk("IDAT", new Uint8Array(deflateSync(new Uint8Array([0, 255, 0, 0])))),
    makeChunk("IEND", new Uint8Array()),
  ];
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const bytes = (s: string) => new Uint8Array([...s].map((c) => c.charCodeAt(0)));
const cat = (...xs: Uint8Array[]) => {
  const out = new Uint8Array(xs.reduce((a, x) => a + x.length, 0));
  let at = 0;
  for (const x of xs) (out.set(x, at), (at += x.length));
  return out;
};

describe("PNG text chunks", () => {
  it("computes the standard CRC-32", () => {
    expect(crc32(bytes("123456789"))).toBe(0xcbf43926);
  });

  it("reads the chunks PIL writes for nodegraph's SaveImage", async () => {
    const text = await readPngText(readFixture("pil-nodegraph.png"));
    expect(Object.keys(text).sort()).toEqual(["nodegraph", "prompt"]);
    const found = embeddedWorkflow(text)!;
    expect(found.kind).toBe("nodegraph");
    expect(found.data).toEqual(imageBasics);
    expect(JSON.parse(text.prompt)["2"].inputs.filename_prefix).toBe("café");
  });

  it("decodes tEXt as Latin-1, and as UTF-8 when a writer put UTF-8 there", async () => {
    const latin = makeChunk("tEXt", cat(bytes("prompt\0"), new Uint8Array([0x63, 0x61, 0x66, 0xe9])));
    expect((await readPngText(png(latin))).prompt).toBe("café");
    const utf8 = makeChunk("tEXt", cat(bytes("prompt\0"), new TextEncoder().encode("café")));
    expect((await readPngText(png(utf8))).prompt).toBe("café");
  });

  it("falls back to the API prompt, and reads iTXt", async () => {
    expect(embeddedWorkflow(await readPngText(readFixture("pil-prompt-only.png")))!.kind).toBe("prompt");
    const t = await readPngText(readFixture("pil-itxt.png"));
    expect(JSON.parse(t.prompt)["2"].inputs.filename_prefix).toBe("猫");
  });

  it("prefers nodegraph over ComfyUI's workflow over its prompt", async () => {
    const doc = png(
      makeChunk("tEXt", cat(bytes("prompt\0"), bytes('{"1":{"class_type":"X","inputs":{}}}'))),
      makeChunk("tEXt", cat(bytes("workflow\0"), bytes('{"nodes":[],"links":[]}'))),
    );
    expect(embeddedWorkflow(await readPngText(doc))!.kind).toBe("workflow");
  });

  it("inflates zTXt and compressed iTXt chunks", async () => {
    const json = JSON.stringify({ version: 1, nodes: {} });
    const z = makeChunk("zTXt", cat(bytes("nodegraph\0"), new Uint8Array([0]), new Uint8Array(deflateSync(Buffer.from(json)))));
    expect((await readPngText(png(z))).nodegraph).toBe(json);
    const i = makeChunk("iTXt", cat(bytes("workflow\0"), new Uint8Array([1, 0]), bytes("\0\0"), new Uint8Array(deflateSync(Buffer.from("{}")))));
    expect((await readPngText(png(i))).workflow).toBe("{}");
  });

  it("skips a broken JSON chunk and refuses files that are not PNGs", async () => {
    const doc = png(makeChunk("tEXt", cat(bytes("nodegraph\0"), bytes("{oops"))), makeChunk("tEXt", cat(bytes("prompt\0"), bytes("{}"))));
    expect(embeddedWorkflow(await readPngText(doc))!.kind).toBe("prompt");
    await expect(readPngText(bytes("GIF89a..."))).rejects.toThrow(/not a PNG/);
    expect(embeddedWorkflow({})).toBeNull();
  });

  it("writes chunks that it (and PIL) can read back", async () => {
    const out = addTextChunks(png(), { nodegraph: JSON.stringify(imageBasics) });
    expect(isPng(out)).toBe(true);
    expect(embeddedWorkflow(await readPngText(out))!.data).toEqual(imageBasics);
  });
});
