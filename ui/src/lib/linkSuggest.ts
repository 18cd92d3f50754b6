// What the search box offers when a link is dropped on empty canvas: the nodes ComfyUI users reach
// for next first (VAE Decode for a LATENT output, a checkpoint loader for a MODEL input ...), then
// nodes whose socket is exactly that type, then the rest that accept it (wildcards); never capped,
// so a node that fits is always in the list.
import { NodeSchema, SchemaMap, searchNodes } from "./schema";

/** For a dragged output of a type: the usual next nodes, most common first. */
const NEXT_FOR_OUTPUT: Record<string, string[]> = {
  LATENT: ["VAEDecode", "KSampler", "KSamplerAdvanced", "LatentUpscale", "LatentUpscaleBy", "VAEDecodeTiled"],
  IMAGE: ["SaveImage", "PreviewImage", "VAEEncode", "ImageScale", "ImageUpscaleWithModel", "ImageScaleBy"],
  MODEL: ["KSampler", "LoraLoader", "KSamplerAdvanced"],
  CLIP: ["CLIPTextEncode", "LoraLoader", "CLIPSetLastLayer"],
  VAE: ["VAEDecode", "VAEEncode", "VAEEncodeForInpaint"],
  CONDITIONING: ["KSampler", "ControlNetApplyAdvanced", "ConditioningCombine", "KSamplerAdvanced"],
  MASK: ["MaskToImage", "SetLatentNoiseMask", "VAEEncodeForInpaint"],
  CONTROL_NET: ["ControlNetApplyAdvanced", "ControlNetApply"],
  UPSCALE_MODEL: ["ImageUpscaleWithModel"],
};

/** For a dragged input of a type: the usual sources. */
const SOURCE_FOR_INPUT: Record<string, string[]> = {
  LATENT: ["EmptyLatentImage", "KSampler", "VAEEncode"],
  IMAGE: ["LoadImage", "VAEDecode"],
  MODEL: ["CheckpointLoaderSimple", "LoraLoader", "UNETLoader"],
  CLIP: ["CheckpointLoaderSimple", "CLIPLoader", "LoraLoader"],
  VAE: ["CheckpointLoaderSimple", "VAELoader"],
  CONDITIONING: ["CLIPTextEncode", "ControlNetApplyAdvanced"],
  MASK: ["LoadImageMask", "ImageToMask"],
  CONTROL_NET: ["ControlNetLoader"],
  UPSCALE_MODEL: ["UpscaleModelLoader"],
};

export function rankForLink(schemas: SchemaMap, query: string, want: { wantInput?: string; wantOutput?: string }): NodeSchema[] {
  const found = searchNodes(schemas, query, { ...want, limit: Infinity });
  const type = want.wantInput ?? want.wantOutput;
  if (!type) return found;
  const usual = (want.wantInput ? NEXT_FOR_OUTPUT : SOURCE_FOR_INPUT)[type] ?? [];
  const exact = (s: NodeSchema) =>
    want.wantInput ? s.inputs.some((i) => i.type === type) : s.outputs.some((o) => o.type === type);
  const rank = (s: NodeSchema) => {
    const k = usual.indexOf(s.name);
    return k >= 0 ? k : exact(s) ? 100 : 200;
  };
  // with a query the text match leads; the link's relevance breaks ties among equal matches
  const textOrder = new Map(found.map((s, k) => [s.name, k]));
  return [...found].sort((a, b) => (query.trim() ? 0 : rank(a) - rank(b)) || (query.trim() ? textOrder.get(a.name)! - textOrder.get(b.name)! : 0) || a.display_name.localeCompare(b.display_name));
}

/** Categories ComfyUI marks as tests or internals: not offered in the palette. */
export const isHiddenCategory = (category: string) => category.split("/").some((part) => part === "_for_testing");
