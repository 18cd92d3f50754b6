"""The conditioning and latent nodes declare what ComfyUI 0.8 declares: class name, inputs in order with
their defaults, ranges and choices, outputs, category, display name. The table is read off ComfyUI 0.8's
nodes.py and comfy_extras/nodes_latent.py, nodes_mask.py (LatentCompositeMasked), nodes_clip_sdxl.py and
nodes_rebatch.py (MAX_RESOLUTION = 16384; V3 io.Int without a step has step 1)."""
from __future__ import annotations

import pytest

M = 16384
UPSCALE = ["nearest-exact", "bilinear", "area", "bicubic", "bislerp"]
C, L = "CONDITIONING", "LATENT"


def link(name, kind):
    return (name, kind, None, None, None, None)


# name: (category, [(input, type, default, min, max, step or choices)], [output types])
COMFY = {
    "CLIPTextEncode": ("conditioning", [("text", "STRING", "", None, None, None), link("clip", "CLIP")], [C]),
    "CLIPSetLastLayer": ("conditioning", [link("clip", "CLIP"), ("stop_at_clip_layer", "INT", -1, -24, -1, 1)], ["CLIP"]),
    "CLIPTextEncodeSDXL": ("advanced/conditioning", [
        link("clip", "CLIP"), ("width", "INT", 1024, 0, M, 1), ("height", "INT", 1024, 0, M, 1),
        ("crop_w", "INT", 0, 0, M, 1), ("crop_h", "INT", 0, 0, M, 1), ("target_width", "INT", 1024, 0, M, 1),
        ("target_height", "INT", 1024, 0, M, 1), ("text_g", "STRING", "", None, None, None),
        ("text_l", "STRING", "", None, None, None)], [C]),
    "CLIPTextEncodeSDXLRefiner": ("advanced/conditioning", [
        ("ascore", "FLOAT", 6.0, 0.0, 1000.0, 0.01), ("width", "INT", 1024, 0, M, 1), ("height", "INT", 1024, 0, M, 1),
        ("text", "STRING", "", None, None, None), link("clip", "CLIP")], [C]),
    "ConditioningCombine": ("conditioning", [link("conditioning_1", C), link("conditioning_2", C)], [C]),
    "ConditioningAverage": ("conditioning", [link("conditioning_to", C), link("conditioning_from", C),
                                             ("conditioning_to_strength", "FLOAT", 1.0, 0.0, 1.0, 0.01)], [C]),
    "ConditioningConcat": ("conditioning", [link("conditioning_to", C), link("conditioning_from", C)], [C]),
    "ConditioningSetArea": ("conditioning", [
        link("conditioning", C), ("width", "INT", 64, 64, M, 8), ("height", "INT", 64, 64, M, 8),
        ("x", "INT", 0, 0, M, 8), ("y", "INT", 0, 0, M, 8), ("strength", "FLOAT", 1.0, 0.0, 10.0, 0.01)], [C]),
    "ConditioningSetAreaPercentage": ("conditioning", [
        link("conditioning", C), ("width", "FLOAT", 1.0, 0.0, 1.0, 0.01), ("height", "FLOAT", 1.0, 0.0, 1.0, 0.01),
        ("x", "FLOAT", 0.0, 0.0, 1.0, 0.01), ("y", "FLOAT", 0.0, 0.0, 1.0, 0.01),
        ("strength", "FLOAT", 1.0, 0.0, 10.0, 0.01)], [C]),
    "ConditioningSetAreaStrength": ("conditioning", [link("conditioning", C),
                                                     ("strength", "FLOAT", 1.0, 0.0, 10.0, 0.01)], [C]),
    "ConditioningSetMask": ("conditioning", [
        link("conditioning", C), link("mask", "MASK"), ("strength", "FLOAT", 1.0, 0.0, 10.0, 0.01),
        ("set_cond_area", "COMBO", "default", None, None, ["default", "mask bounds"])], [C]),
    "ConditioningZeroOut": ("advanced/conditioning", [link("conditioning", C)], [C]),
    "ConditioningSetTimestepRange": ("advanced/conditioning", [
        link("conditioning", C), ("start", "FLOAT", 0.0, 0.0, 1.0, 0.001), ("end", "FLOAT", 1.0, 0.0, 1.0, 0.001)], [C]),
    "EmptyLatentImage": ("latent", [("width", "INT", 512, 16, M, 8), ("height", "INT", 512, 16, M, 8),
                                    ("batch_size", "INT", 1, 1, 4096, 1)], [L]),
    "LatentUpscale": ("latent", [link("samples", L), ("upscale_method", "COMBO", "nearest-exact", None, None, UPSCALE),
                                 ("width", "INT", 512, 0, M, 8), ("height", "INT", 512, 0, M, 8),
                                 ("crop", "COMBO", "disabled", None, None, ["disabled", "center"])], [L]),
    "LatentUpscaleBy": ("latent", [link("samples", L), ("upscale_method", "COMBO", "nearest-exact", None, None, UPSCALE),
                                   ("scale_by", "FLOAT", 1.5, 0.01, 8.0, 0.01)], [L]),
    "LatentRotate": ("latent/transform", [link("samples", L), ("rotation", "COMBO", "none", None, None,
                                                               ["none", "90 degrees", "180 degrees", "270 degrees"])], [L]),
    "LatentFlip": ("latent/transform", [link("samples", L), ("flip_method", "COMBO", "x-axis: vertically", None, None,
                                                             ["x-axis: vertically", "y-axis: horizontally"])], [L]),
    "LatentCrop": ("latent/transform", [link("samples", L), ("width", "INT", 512, 64, M, 8),
                                        ("height", "INT", 512, 64, M, 8), ("x", "INT", 0, 0, M, 8),
                                        ("y", "INT", 0, 0, M, 8)], [L]),
    "LatentComposite": ("latent", [link("samples_to", L), link("samples_from", L), ("x", "INT", 0, 0, M, 8),
                                   ("y", "INT", 0, 0, M, 8), ("feather", "INT", 0, 0, M, 8)], [L]),
    "LatentCompositeMasked": ("latent", [link("destination", L), link("source", L), ("x", "INT", 0, 0, M, 8),
                                         ("y", "INT", 0, 0, M, 8), ("resize_source", "BOOLEAN", False, None, None, None),
                                         link("mask", "MASK")], [L]),
    "LatentBlend": ("_for_testing", [link("samples1", L), link("samples2", L),
                                     ("blend_factor", "FLOAT", 0.5, 0.0, 1.0, 0.01)], [L]),
    "SetLatentNoiseMask": ("latent/inpaint", [link("samples", L), link("mask", "MASK")], [L]),
    "LatentAdd": ("latent/advanced", [link("samples1", L), link("samples2", L)], [L]),
    "LatentSubtract": ("latent/advanced", [link("samples1", L), link("samples2", L)], [L]),
    "LatentMultiply": ("latent/advanced", [link("samples", L), ("multiplier", "FLOAT", 1.0, -10.0, 10.0, 0.01)], [L]),
    "LatentInterpolate": ("latent/advanced", [link("samples1", L), link("samples2", L),
                                              ("ratio", "FLOAT", 1.0, 0.0, 1.0, 0.01)], [L]),
    "LatentBatch": ("latent/batch", [link("samples1", L), link("samples2", L)], [L]),
    "LatentBatchSeedBehavior": ("latent/advanced", [link("samples", L), ("seed_behavior", "COMBO", "fixed", None, None,
                                                                         ["random", "fixed"])], [L]),
    "RepeatLatentBatch": ("latent/batch", [link("samples", L), ("amount", "INT", 1, 1, 64, 1)], [L]),
    "LatentFromBatch": ("latent/batch", [link("samples", L), ("batch_index", "INT", 0, 0, 63, 1),
                                         ("length", "INT", 1, 1, 64, 1)], [L]),
    "RebatchLatents": ("latent/batch", [link("latents", L), ("batch_size", "INT", 1, 1, 4096, 1)], [L]),
    "SaveLatent": ("_for_testing", [link("samples", L), ("filename_prefix", "STRING", "latents/ComfyUI", None, None, None)],
                   []),
    "LoadLatent": ("_for_testing", [("latent", "COMBO", None, None, None, None)], [L]),
    "VAEDecodeTiled": ("_for_testing", [link("samples", L), link("vae", "VAE"), ("tile_size", "INT", 512, 64, 4096, 32),
                                        ("overlap", "INT", 64, 0, 4096, 32), ("temporal_size", "INT", 64, 8, 4096, 4),
                                        ("temporal_overlap", "INT", 8, 4, 4096, 4)], ["IMAGE"]),
    "VAEEncodeTiled": ("_for_testing", [link("pixels", "IMAGE"), link("vae", "VAE"), ("tile_size", "INT", 512, 64, 4096, 64),
                                        ("overlap", "INT", 64, 0, 4096, 32), ("temporal_size", "INT", 64, 8, 4096, 4),
                                        ("temporal_overlap", "INT", 8, 4, 4096, 4)], [L]),
}
OPTIONAL = {("LatentCompositeMasked", "mask"),
            # ComfyUI declares these required; ours accept workflows saved before they existed
            ("VAEDecodeTiled", "temporal_size"), ("VAEDecodeTiled", "temporal_overlap"),
            ("VAEEncodeTiled", "temporal_size"), ("VAEEncodeTiled", "temporal_overlap")}
# NODE_DISPLAY_NAME_MAPPINGS of nodes.py ("ConditioningAverage " carries a stray space there, so ComfyUI shows
# the class name) and the V3 display_name of RebatchLatents
DISPLAY = {"CLIPTextEncode": "CLIP Text Encode (Prompt)", "CLIPSetLastLayer": "CLIP Set Last Layer",
           "ConditioningCombine": "Conditioning (Combine)", "ConditioningConcat": "Conditioning (Concat)",
           "ConditioningSetArea": "Conditioning (Set Area)",
           "ConditioningSetAreaPercentage": "Conditioning (Set Area with Percentage)",
           "ConditioningSetMask": "Conditioning (Set Mask)", "SetLatentNoiseMask": "Set Latent Noise Mask",
           "LatentRotate": "Rotate Latent", "LatentFlip": "Flip Latent", "LatentCrop": "Crop Latent",
           "EmptyLatentImage": "Empty Latent Image", "LatentUpscale": "Upscale Latent",
           "LatentUpscaleBy": "Upscale Latent By", "LatentComposite": "Latent Composite", "LatentBlend": "Latent Blend",
           "LatentFromBatch": "Latent From Batch", "RepeatLatentBatch": "Repeat Latent Batch",
           "RebatchLatents": "Rebatch Latents"}


def declared(inp):
    extra = inp.choices if inp.type.name == "COMBO" else inp.step
    widget = inp.type.name in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
    default = inp.default if inp.has_default and widget else None
    if inp.type.name == "COMBO" and callable(inp.choices):
        default, extra = None, None  # a file list
    if not widget:
        extra = None
    bounds = (inp.min, inp.max) if inp.type.name in ("INT", "FLOAT") else (None, None)
    return (inp.name, inp.type.name, default, *bounds, extra)


@pytest.mark.parametrize("name", sorted(COMFY))
def test_declared_as_comfyui(builtin_registry, name):
    spec = builtin_registry.get(name)
    assert spec is not None, f"{name} is missing"
    category, inputs, outputs = COMFY[name]
    assert spec.module.startswith("nodes.diffusion")
    assert spec.category == category
    assert [declared(i) for i in spec.inputs] == inputs
    assert {(name, i.name) for i in spec.inputs if i.optional} == {k for k in OPTIONAL if k[0] == name}
    assert [o.type.name for o in spec.outputs] == outputs
    if name in DISPLAY:
        assert spec.display_name == DISPLAY[name]


def test_list_and_output_flags(builtin_registry):
    rebatch = builtin_registry.get("RebatchLatents")  # ComfyUI: is_input_list, output is_output_list
    assert all(i.is_list for i in rebatch.inputs) and rebatch.outputs[0].is_list
    assert builtin_registry.get("SaveLatent").output_node
    assert builtin_registry.get("CLIPTextEncode").inputs[0].multiline
    sdxl = builtin_registry.get("CLIPTextEncodeSDXL")
    assert all(i.multiline for i in sdxl.inputs if i.type.name == "STRING")


def test_gan_pack_leaves_comfyui_names(builtin_registry):
    assert builtin_registry.get("LatentInterpolate").module.startswith("nodes.diffusion")
    assert builtin_registry.get("GANLatentInterpolate").module.startswith("nodes.gan")
