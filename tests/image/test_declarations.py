"""The image and mask nodes declare what ComfyUI 0.8 declares: class name, inputs in order with their
defaults, ranges and choices, outputs, category. The table is read off ComfyUI's nodes.py and
comfy_extras/nodes_images.py, nodes_post_processing.py, nodes_mask.py, nodes_morphology.py,
nodes_canny.py and nodes_compositing.py (MAX_RESOLUTION = 16384)."""
from __future__ import annotations

import pytest

M = 16384
UPSCALE = ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]

# name: (category, [(input, type, default, min, max, step or choices)], [output types])
COMFY = {
    "LoadImageMask": ("mask", [("image", "COMBO", None, None, None, None),
                               ("channel", "COMBO", "alpha", None, None, ["alpha", "red", "green", "blue"])], ["MASK"]),
    "GetImageSize": ("image", [("image", "IMAGE", None, None, None, None)], ["INT", "INT", "INT"]),
    "ImageScaleToTotalPixels": ("image/upscaling", [
        ("image", "IMAGE", None, None, None, None), ("upscale_method", "COMBO", "nearest-exact", None, None, UPSCALE),
        ("megapixels", "FLOAT", 1.0, 0.01, 16.0, 0.01), ("resolution_steps", "INT", 1, 1, 256, 1)], ["IMAGE"]),
    "ImageFromBatch": ("image/batch", [("image", "IMAGE", None, None, None, None), ("batch_index", "INT", 0, 0, 4095, 1),
                                       ("length", "INT", 1, 1, 4096, 1)], ["IMAGE"]),
    "RepeatImageBatch": ("image/batch", [("image", "IMAGE", None, None, None, None), ("amount", "INT", 1, 1, 4096, 1)],
                         ["IMAGE"]),
    "ResizeAndPadImage": ("image/transform", [
        ("image", "IMAGE", None, None, None, None), ("target_width", "INT", 512, 1, M, 1),
        ("target_height", "INT", 512, 1, M, 1), ("padding_color", "COMBO", "white", None, None, ["white", "black"]),
        ("interpolation", "COMBO", "area", None, None, ["area", "bicubic", "nearest-exact", "bilinear", "lanczos"])],
        ["IMAGE"]),
    "ImageStitch": ("image/transform", [
        ("image1", "IMAGE", None, None, None, None),
        ("direction", "COMBO", "right", None, None, ["right", "down", "left", "up"]),
        ("match_image_size", "BOOLEAN", True, None, None, None), ("spacing_width", "INT", 0, 0, 1024, 2),
        ("spacing_color", "COMBO", "white", None, None, ["white", "black", "red", "green", "blue"]),
        ("image2", "IMAGE", None, None, None, None)], ["IMAGE"]),
    "ImageSharpen": ("image/postprocessing", [
        ("image", "IMAGE", None, None, None, None), ("sharpen_radius", "INT", 1, 1, 31, 1),
        ("sigma", "FLOAT", 1.0, 0.1, 10.0, 0.01), ("alpha", "FLOAT", 1.0, 0.0, 5.0, 0.01)], ["IMAGE"]),
    "ImageBlur": ("image/postprocessing", [("image", "IMAGE", None, None, None, None), ("blur_radius", "INT", 1, 1, 31, 1),
                                           ("sigma", "FLOAT", 1.0, 0.1, 10.0, 0.1)], ["IMAGE"]),
    "ImageQuantize": ("image/postprocessing", [
        ("image", "IMAGE", None, None, None, None), ("colors", "INT", 256, 1, 256, 1),
        ("dither", "COMBO", "none", None, None, ["none", "floyd-steinberg", "bayer-2", "bayer-4", "bayer-8", "bayer-16"])],
        ["IMAGE"]),
    "ImageBlend": ("image/postprocessing", [
        ("image1", "IMAGE", None, None, None, None), ("image2", "IMAGE", None, None, None, None),
        ("blend_factor", "FLOAT", 0.5, 0.0, 1.0, 0.01),
        ("blend_mode", "COMBO", "normal", None, None,
         ["normal", "multiply", "screen", "overlay", "soft_light", "difference"])], ["IMAGE"]),
    "Morphology": ("image/postprocessing", [
        ("image", "IMAGE", None, None, None, None),
        ("operation", "COMBO", "erode", None, None, ["erode", "dilate", "open", "close", "gradient", "bottom_hat", "top_hat"]),
        ("kernel_size", "INT", 3, 3, 999, 1)], ["IMAGE"]),
    "Canny": ("image/preprocessors", [("image", "IMAGE", None, None, None, None),
                                      ("low_threshold", "FLOAT", 0.4, 0.01, 0.99, 0.01),
                                      ("high_threshold", "FLOAT", 0.8, 0.01, 0.99, 0.01)], ["IMAGE"]),
    "ImageBatch": ("image", [("image1", "IMAGE", None, None, None, None), ("image2", "IMAGE", None, None, None, None)],
                   ["IMAGE"]),
    "ImageCrop": ("image/transform", [("image", "IMAGE", None, None, None, None), ("width", "INT", 512, 1, M, 1),
                                      ("height", "INT", 512, 1, M, 1), ("x", "INT", 0, 0, M, 1), ("y", "INT", 0, 0, M, 1)],
                  ["IMAGE"]),
    "ImageRotate": ("image/transform", [("image", "IMAGE", None, None, None, None),
                                        ("rotation", "COMBO", "none", None, None,
                                         ["none", "90 degrees", "180 degrees", "270 degrees"])], ["IMAGE"]),
    "ImageFlip": ("image/transform", [("image", "IMAGE", None, None, None, None),
                                      ("flip_method", "COMBO", "x-axis: vertically", None, None,
                                       ["x-axis: vertically", "y-axis: horizontally"])], ["IMAGE"]),
    "ImageInvert": ("image", [("image", "IMAGE", None, None, None, None)], ["IMAGE"]),
    "ImagePadForOutpaint": ("image", [("image", "IMAGE", None, None, None, None), ("left", "INT", 0, 0, M, 8),
                                      ("top", "INT", 0, 0, M, 8), ("right", "INT", 0, 0, M, 8),
                                      ("bottom", "INT", 0, 0, M, 8), ("feathering", "INT", 40, 0, M, 1)],
                            ["IMAGE", "MASK"]),
    "SolidMask": ("mask", [("value", "FLOAT", 1.0, 0.0, 1.0, 0.01), ("width", "INT", 512, 1, M, 1),
                           ("height", "INT", 512, 1, M, 1)], ["MASK"]),
    "InvertMask": ("mask", [("mask", "MASK", None, None, None, None)], ["MASK"]),
    "CropMask": ("mask", [("mask", "MASK", None, None, None, None), ("x", "INT", 0, 0, M, 1), ("y", "INT", 0, 0, M, 1),
                          ("width", "INT", 512, 1, M, 1), ("height", "INT", 512, 1, M, 1)], ["MASK"]),
    "MaskComposite": ("mask", [("destination", "MASK", None, None, None, None), ("source", "MASK", None, None, None, None),
                               ("x", "INT", 0, 0, M, 1), ("y", "INT", 0, 0, M, 1),
                               ("operation", "COMBO", "multiply", None, None,
                                ["multiply", "add", "subtract", "and", "or", "xor"])], ["MASK"]),
    "FeatherMask": ("mask", [("mask", "MASK", None, None, None, None), ("left", "INT", 0, 0, M, 1),
                             ("top", "INT", 0, 0, M, 1), ("right", "INT", 0, 0, M, 1), ("bottom", "INT", 0, 0, M, 1)],
                    ["MASK"]),
    "GrowMask": ("mask", [("mask", "MASK", None, None, None, None), ("expand", "INT", 0, -M, M, 1),
                          ("tapered_corners", "BOOLEAN", True, None, None, None)], ["MASK"]),
    "ThresholdMask": ("mask", [("mask", "MASK", None, None, None, None), ("value", "FLOAT", 0.5, 0.0, 1.0, 0.01)],
                      ["MASK"]),
    "ImageCompositeMasked": ("image", [
        ("destination", "IMAGE", None, None, None, None), ("source", "IMAGE", None, None, None, None),
        ("x", "INT", 0, 0, M, 1), ("y", "INT", 0, 0, M, 1), ("resize_source", "BOOLEAN", False, None, None, None),
        ("mask", "MASK", None, None, None, None)], ["IMAGE"]),
    "ImageColorToMask": ("mask", [("image", "IMAGE", None, None, None, None), ("color", "INT", 0, 0, 0xFFFFFF, 1)],
                         ["MASK"]),
    "ImageToMask": ("mask", [("image", "IMAGE", None, None, None, None),
                             ("channel", "COMBO", "red", None, None, ["red", "green", "blue", "alpha"])], ["MASK"]),
    "MaskToImage": ("mask", [("mask", "MASK", None, None, None, None)], ["IMAGE"]),
    "SplitImageWithAlpha": ("mask/compositing", [("image", "IMAGE", None, None, None, None)], ["IMAGE", "MASK"]),
    "JoinImageWithAlpha": ("mask/compositing", [("image", "IMAGE", None, None, None, None),
                                                ("alpha", "MASK", None, None, None, None)], ["IMAGE"]),
    "ImageScale": ("image/upscaling", [("image", "IMAGE", None, None, None, None),
                                       ("upscale_method", "COMBO", "nearest-exact", None, None, UPSCALE),
                                       ("width", "INT", 512, 0, M, 1), ("height", "INT", 512, 0, M, 1),
                                       ("crop", "COMBO", "disabled", None, None, ["disabled", "center"])], ["IMAGE"]),
    "ImageScaleBy": ("image/upscaling", [("image", "IMAGE", None, None, None, None),
                                         ("upscale_method", "COMBO", "nearest-exact", None, None, UPSCALE),
                                         ("scale_by", "FLOAT", 1.0, 0.01, 8.0, 0.01)], ["IMAGE"]),
    "ImageScaleToMaxDimension": ("image/upscaling", [
        ("image", "IMAGE", None, None, None, None),
        ("upscale_method", "COMBO", "area", None, None, ["area", "lanczos", "bilinear", "nearest-exact", "bilinear", "bicubic"]),
        ("largest_size", "INT", 512, 0, M, 1)], ["IMAGE"]),
    "ImageAddNoise": ("image", [("image", "IMAGE", None, None, None, None), ("seed", "INT", 0, 0, 2**64 - 1, 1),
                                ("strength", "FLOAT", 0.5, 0.0, 1.0, 0.01)], ["IMAGE"]),
    "MaskPreview": ("mask", [("mask", "MASK", None, None, None, None)], []),
    "EmptyImage": ("image", [("width", "INT", 512, 1, M, 1), ("height", "INT", 512, 1, M, 1),
                             ("batch_size", "INT", 1, 1, 4096, 1), ("color", "INT", 0, 0, 0xFFFFFF, 1)], ["IMAGE"]),
}
OPTIONAL = {("ImageStitch", "image2"), ("ImageCompositeMasked", "mask")}
# ComfyUI's display names for the nodes that define one (NODE_DISPLAY_NAME_MAPPINGS, V3 display_name)
DISPLAY = {"LoadImageMask": "Load Image (as Mask)", "ImageInvert": "Invert Image", "ImageBatch": "Batch Images",
           "ImagePadForOutpaint": "Pad Image for Outpainting", "ImageCrop": "Image Crop", "ImageStitch": "Image Stitch",
           "ImageBlend": "Image Blend", "ImageBlur": "Image Blur", "ImageQuantize": "Image Quantize",
           "ImageSharpen": "Image Sharpen", "ImageScaleToTotalPixels": "Scale Image to Total Pixels",
           "GetImageSize": "Get Image Size", "Morphology": "ImageMorphology", "GrowMask": "Grow Mask",
           "SplitImageWithAlpha": "Split Image with Alpha", "JoinImageWithAlpha": "Join Image with Alpha",
           "ImageToMask": "Convert Image to Mask", "MaskToImage": "Convert Mask to Image",
           "ImageScale": "Upscale Image", "ImageScaleBy": "Upscale Image By", "MaskPreview": "Preview Mask"}


def declared(inp):
    extra = inp.choices if inp.type.name == "COMBO" else inp.step
    default = inp.default if inp.has_default and inp.type.name not in ("IMAGE", "MASK") else None
    if inp.type.name == "COMBO" and callable(inp.choices):
        default, extra = None, None  # a file list
    bounds = (inp.min, inp.max) if inp.type.name in ("INT", "FLOAT") else (None, None)
    return (inp.name, inp.type.name, default, *bounds, extra)


@pytest.mark.parametrize("name", sorted(COMFY))
def test_declared_as_comfyui(builtin_registry, name):
    spec = builtin_registry.get(name)
    assert spec is not None, f"{name} is missing"
    category, inputs, outputs = COMFY[name]
    assert spec.module.startswith("nodes.image")  # the image pack owns it
    assert spec.category == category
    assert [declared(i) for i in spec.inputs] == inputs
    assert {(name, i.name) for i in spec.inputs if i.optional} == {k for k in OPTIONAL if k[0] == name}
    assert [o.type.name for o in spec.outputs] == outputs
    if name in DISPLAY:
        assert spec.display_name == DISPLAY[name]


def test_get_image_size_outputs_are_named_as_comfyui(builtin_registry):
    assert [o.name for o in builtin_registry.get("GetImageSize").outputs] == ["width", "height", "batch_size"]


def test_image_pack_imports_no_other_pack():
    import ast
    from pathlib import Path
    for path in (Path(__file__).resolve().parents[2] / "nodes" / "image").glob("*.py"):
        for stmt in ast.walk(ast.parse(path.read_text())):
            if isinstance(stmt, ast.ImportFrom) and stmt.level == 0:
                modules = [stmt.module or ""]
            elif isinstance(stmt, ast.Import):
                modules = [a.name for a in stmt.names]
            else:
                continue
            for module in modules:
                assert not module.startswith("nodes"), f"{path.name} imports {module}"
                assert module.split(".")[0] != "nodegraph" or module in ("nodegraph", "nodegraph.images"), \
                    f"{path.name} imports {module}, outside nodegraph's public API"
