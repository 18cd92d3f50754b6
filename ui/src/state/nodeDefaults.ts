// Defaults the editor gives a new node beyond its declared ones. An "Empty … Latent" node declares
// ComfyUI's 512×512 (kept, so ComfyUI files and API prompts mean the same here), but a new one in the
// editor is sized for the checkpoint in use: the graph's checkpoint loader's, else the default one
// (the first the server lists), at the size its file declares (GET /v1/models/checkpoints/info);
// for the shipped default model that is 128×128.
import { api } from "../lib/api";
import { GNode, OpData, isOp } from "../lib/graph";
import { NodeSchema, SchemaMap } from "../lib/schema";

const sizes = new Map<string, [number, number] | null>();

const checkpointInput = (s: NodeSchema | undefined) => s?.inputs.find((i) => i.name === "ckpt_name" && i.folder === "checkpoints");

/** Ask the server for the native size of the checkpoints the loaders offer (a few header reads). */
export async function learnModelSizes(schemas: SchemaMap): Promise<void> {
  const names = new Set<string>();
  for (const s of Object.values(schemas)) for (const c of checkpointInput(s)?.choices?.slice(0, 20) ?? []) names.add(c);
  await Promise.all(
    [...names].filter((n) => !sizes.has(n)).map(async (n) => {
      try {
        const info = await api.modelInfo("checkpoints", n);
        sizes.set(n, info.image_size && info.image_size.length === 2 ? [info.image_size[0], info.image_size[1]] : null);
      } catch {
        sizes.set(n, null);
      }
    }),
  );
}

/** The checkpoint a new node would work with: the graph's first loader's, else the default one. */
function checkpointInUse(nodes: GNode[], schemas: SchemaMap): string | undefined {
  for (const n of nodes) {
    if (!isOp(n)) continue;
    const inp = checkpointInput(schemas[n.data.nodeType]);
    if (inp && typeof n.data.values[inp.name] === "string") return n.data.values[inp.name] as string;
  }
  const loader = schemas.CheckpointLoaderSimple;
  return checkpointInput(loader)?.choices?.[0];
}

const isEmptyLatent = (s: NodeSchema) =>
  s.name.startsWith("Empty") && s.outputs.some((o) => o.type === "LATENT") && ["width", "height"].every((k) => s.inputs.some((i) => i.name === k && i.default === 512));

/** A new node's values, adjusted (in place) where the editor knows better than the declared default. */
export function applyNewNodeDefaults(node: GNode<OpData>, nodes: GNode[], schemas: SchemaMap): void {
  const schema = schemas[node.data.nodeType];
  if (!schema || !isEmptyLatent(schema)) return;
  const ckpt = checkpointInUse(nodes, schemas);
  const size = ckpt ? sizes.get(ckpt) : undefined;
  if (!size) return;
  node.data.values = { ...node.data.values, width: size[0], height: size[1] };
}
