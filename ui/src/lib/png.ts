// PNG text chunks (tEXt, iTXt, zTXt): where nodegraph and ComfyUI embed workflows.
// nodegraph writes "nodegraph" (native), ComfyUI writes "workflow" (UI format) and "prompt" (API).

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && SIGNATURE.every((b, i) => bytes[i] === b);
}

const latin1 = (b: Uint8Array) => {
  let s = "";
  for (let i = 0; i < b.length; i += 4096) s += String.fromCharCode(...b.subarray(i, i + 4096));
  return s;
};

/** tEXt is Latin-1 by the spec, but some writers put UTF-8 there: take UTF-8 when it decodes cleanly. */
function decodeText(b: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(b);
  } catch {
    return latin1(b);
  }
}

export type Inflate = (data: Uint8Array) => Promise<Uint8Array>;

/** zlib inflate with the browser's (and Node's) DecompressionStream. */
export const inflate: Inflate = async (data) => {
  const stream = new Blob([data as BlobPart]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
};

interface RawChunk {
  type: string;
  data: Uint8Array;
}

function* chunks(bytes: Uint8Array): Generator<RawChunk> {
  if (!isPng(bytes)) throw new Error("not a PNG file");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 8;
  while (at + 12 <= bytes.length) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    if (at + 12 + length > bytes.length) break; // truncated file: keep what was read
    yield { type, data: bytes.subarray(at + 8, at + 8 + length) };
    at += 12 + length;
    if (type === "IEND") break;
  }
}

/** All text chunks of a PNG, keyword → text. Compressed chunks need `inflateFn` (async). */
export async function readPngText(bytes: Uint8Array, inflateFn: Inflate = inflate): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const c of chunks(bytes)) {
    const zero = c.data.indexOf(0);
    if (zero < 0) continue;
    const key = latin1(c.data.subarray(0, zero));
    if (c.type === "tEXt") {
      out[key] = decodeText(c.data.subarray(zero + 1));
    } else if (c.type === "zTXt") {
      // keyword \0 method(1) compressed-text
      try {
        out[key] = decodeText(await inflateFn(c.data.subarray(zero + 2)));
      } catch {
        /* unreadable chunk: skip it */
      }
    } else if (c.type === "iTXt") {
      // keyword \0 flag(1) method(1) language \0 translated-keyword \0 text
      const flag = c.data[zero + 1];
      let p = zero + 3;
      const langEnd = c.data.indexOf(0, p);
      if (langEnd < 0) continue;
      const transEnd = c.data.indexOf(0, langEnd + 1);
      if (transEnd < 0) continue;
      p = transEnd + 1;
      const body = c.data.subarray(p);
      try {
        const raw = flag === 1 ? await inflateFn(body) : body;
        out[key] = new TextDecoder("utf-8").decode(raw);
      } catch {
        /* skip */
      }
    }
  }
  return out;
}

export type EmbeddedKind = "nodegraph" | "workflow" | "prompt";

/** The workflow a PNG carries, preferring our native document, then ComfyUI's UI, then its API prompt. */
export function embeddedWorkflow(text: Record<string, string>): { kind: EmbeddedKind; data: unknown } | null {
  for (const kind of ["nodegraph", "workflow", "prompt"] as EmbeddedKind[]) {
    const raw = text[kind];
    if (typeof raw !== "string") continue;
    try {
      return { kind, data: JSON.parse(raw) };
    } catch {
      /* a broken chunk: try the next */
    }
  }
  return null;
}

// --- writing (tests, and "save image with workflow") --------------------------------------------

let CRC_TABLE: Uint32Array | null = null;

export function crc32(bytes: Uint8Array): number {
  if (!CRC_TABLE) {
    CRC_TABLE = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      CRC_TABLE[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function makeChunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** An iTXt chunk (UTF-8, uncompressed): safe for any text. */
export function itxtChunk(key: string, text: string): Uint8Array {
  const k = new TextEncoder().encode(key);
  const t = new TextEncoder().encode(text);
  const data = new Uint8Array(k.length + 5 + t.length);
  data.set(k, 0);
  // \0, flag 0, method 0, empty language \0, empty translated keyword \0
  data.set(t, k.length + 5);
  return makeChunk("iTXt", data);
}

/** Insert text chunks into a PNG right after its IHDR. */
export function addTextChunks(png: Uint8Array, text: Record<string, string>): Uint8Array {
  if (!isPng(png)) throw new Error("not a PNG file");
  const ihdrEnd = 8 + 12 + new DataView(png.buffer, png.byteOffset).getUint32(8);
  const extra = Object.entries(text).map(([k, v]) => itxtChunk(k, v));
  const size = png.length + extra.reduce((a, c) => a + c.length, 0);
  const out = new Uint8Array(size);
  out.set(png.subarray(0, ihdrEnd), 0);
  let at = ihdrEnd;
  for (const c of extra) {
    out.set(c, at);
    at += c.length;
  }
  out.set(png.subarray(ihdrEnd), at);
  return out;
}
