import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import type { SchemaMap, NodeSchema } from "../src/lib/schema";

const here = dirname(fileURLToPath(import.meta.url));
export const fixture = (name: string) => join(here, "fixtures", name);
export const readFixture = (name: string) => new Uint8Array(readFileSync(fixture(name)));

/** The real schemas of the primitives and image packs (`nodegraph nodes --json`). */
const real = JSON.parse(readFileSync(fixture("schemas.json"), "utf-8")) as SchemaMap;

// The Stable Diffusion nodes as ComfyUI declares them (for txt2img-shaped tests).
const sdDeclared: Omit<NodeSchema, "version" | "deterministic" | "module">[] = [
  {
    name: "CheckpointLoaderSimple", display_name: "Load Checkpoint", category: "loaders", description: "",
    inputs: [{ name: "ckpt_name", type: "COMBO", required: true, widget: true, folder: "checkpoints", choices: ["tiny.safetensors"] }],
    outputs: [{ name: "MODEL", type: "MODEL" }, { name: "CLIP", type: "CLIP" }, { name: "VAE", type: "VAE" }], output_node: false,
  },
  {
    name: "CLIPTextEncode", display_name: "CLIP Text Encode", category: "conditioning", description: "",
    inputs: [{ name: "text", type: "STRING", required: true, widget: true, multiline: true, default: "" }, { name: "clip", type: "CLIP", required: true, widget: false }],
    outputs: [{ name: "CONDITIONING", type: "CONDITIONING" }], output_node: false,
  },
  {
    name: "EmptyLatentImage", display_name: "Empty Latent Image", category: "latent", description: "",
    inputs: [
      { name: "width", type: "INT", required: true, widget: true, default: 512, min: 16, max: 8192, step: 8 },
      { name: "height", type: "INT", required: true, widget: true, default: 512, min: 16, max: 8192, step: 8 },
      { name: "batch_size", type: "INT", required: true, widget: true, default: 1, min: 1, max: 64 },
    ],
    outputs: [{ name: "LATENT", type: "LATENT" }], output_node: false,
  },
  {
    name: "KSampler", display_name: "KSampler", category: "sampling", description: "",
    inputs: [
      { name: "model", type: "MODEL", required: true, widget: false },
      { name: "seed", type: "INT", required: true, widget: true, default: 0, min: 0, max: 18446744073709551615, control_after_generate: true },
      { name: "steps", type: "INT", required: true, widget: true, default: 20, min: 1, max: 10000 },
      { name: "cfg", type: "FLOAT", required: true, widget: true, default: 8, min: 0, max: 100, step: 0.1 },
      { name: "sampler_name", type: "COMBO", required: true, widget: true, choices: ["euler", "euler_ancestral"], default: "euler" },
      { name: "scheduler", type: "COMBO", required: true, widget: true, choices: ["normal", "karras"], default: "normal" },
      { name: "positive", type: "CONDITIONING", required: true, widget: false },
      { name: "negative", type: "CONDITIONING", required: true, widget: false },
      { name: "latent_image", type: "LATENT", required: true, widget: false },
      { name: "denoise", type: "FLOAT", required: true, widget: true, default: 1, min: 0, max: 1, step: 0.01 },
    ],
    outputs: [{ name: "LATENT", type: "LATENT" }], output_node: false,
  },
  {
    name: "VAEDecode", display_name: "VAE Decode", category: "latent", description: "",
    inputs: [{ name: "samples", type: "LATENT", required: true, widget: false }, { name: "vae", type: "VAE", required: true, widget: false }],
    outputs: [{ name: "IMAGE", type: "IMAGE" }], output_node: false,
  },
];
const sd: NodeSchema[] = sdDeclared.map((s) => ({ ...s, version: 1, deterministic: true, module: "nodes.diffusion" }));

export const schemas: SchemaMap = { ...real, ...Object.fromEntries(sd.map((s) => [s.name, s])) };

/** workflows/image-basics.json of the repo. */
/** workflows/image-basics.json as it runs: without the editor positions the shipped file carries. */
export const imageBasics = withoutLayout(JSON.parse(readFileSync(join(here, "..", "..", "workflows", "image-basics.json"), "utf-8")));

function withoutLayout<T extends { nodes: Record<string, { ui?: Record<string, unknown> }> }>(doc: T): T {
  for (const n of Object.values(doc.nodes)) {
    if (n.ui) delete n.ui.pos;
    if (n.ui && !Object.keys(n.ui).length) delete n.ui;
  }
  return doc;
}

/** The ComfyUI default txt2img graph in API format. */
export const txt2imgApi = {
  "3": { class_type: "KSampler", inputs: { seed: 156680208700286, steps: 20, cfg: 8, sampler_name: "euler", scheduler: "normal", denoise: 1, model: ["4", 0], positive: ["6", 0], negative: ["7", 0], latent_image: ["5", 0] } },
  "4": { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: "tiny.safetensors" } },
  "5": { class_type: "EmptyLatentImage", inputs: { width: 512, height: 512, batch_size: 1 } },
  "6": { class_type: "CLIPTextEncode", inputs: { text: "a red circle", clip: ["4", 1] } },
  "7": { class_type: "CLIPTextEncode", inputs: { text: "blurry", clip: ["4", 1] } },
  "8": { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["4", 2] } },
  "9": { class_type: "SaveImage", inputs: { filename_prefix: "ComfyUI", images: ["8", 0] } },
};
