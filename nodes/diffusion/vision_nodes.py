"""Image-conditioning nodes with ComfyUI 0.8's names, inputs and maths (nodes.py, comfy_extras/nodes_ip2p.py):
CLIP vision, style models (T2I-Adapter style), unCLIP and InstructPix2Pix."""
from __future__ import annotations


import torch

from nodegraph import (CLIP, CONDITIONING, IMAGE, LATENT, MODEL, VAE, Choice, Float, Input, ModelFile, ModelHandle,
                       Output, node)

from .loader_nodes import checkpoint_handles
from .vae_nodes import vae_encode
from .vision.clip_vision import ClipVision, ClipVisionOutput, build_clip_vision, load_clip_vision, open_clip_to_transformers
from .vision.style_model import StyleModel, build_style_model
from .vision_types import CLIP_VISION, CLIP_VISION_OUTPUT, STYLE_MODEL

__all__ = ["CLIPVisionLoader", "CLIPVisionEncode", "StyleModelLoader", "StyleModelApply", "unCLIPConditioning",
           "unCLIPCheckpointLoader", "InstructPixToPixConditioning"]

UNCLIP_VISION_PREFIX = "embedder.model.visual."  # SD2.1 unCLIP's image encoder (open_clip layout)


def _expect(value, module_type: type, node_input: str, what: str):
    if not isinstance(value, ModelHandle) or not isinstance(value.module, module_type):
        raise ValueError(f"{node_input}: expected {what}, got {type(value).__name__}")
    return value


@node(category="loaders", display_name="Load CLIP Vision")
class CLIPVisionLoader:
    """Load a CLIP vision encoder (transformers `vision_model.*` or open_clip `visual.*` layout)."""
    inputs = [ModelFile("clip_name", folder="clip_vision")]
    outputs = [Output("CLIP_VISION", CLIP_VISION)]

    @classmethod
    def fingerprint(cls, env, clip_name):
        return env.models.fingerprint("clip_vision", clip_name)

    def run(self, ctx, clip_name):
        return (ctx.models.load("clip_vision", clip_name, load_clip_vision),)


@node(category="conditioning", display_name="CLIP Vision Encode")
class CLIPVisionEncode:
    """Encode images with CLIP vision: resized (short side, bicubic) and centre-cropped to the model's
    size ("center"), or squashed to it ("none"), normalised with CLIP's image statistics."""
    inputs = [Input("clip_vision", CLIP_VISION), Input("image", IMAGE), Choice("crop", ["center", "none"])]
    outputs = [Output("CLIP_VISION_OUTPUT", CLIP_VISION_OUTPUT)]

    @torch.no_grad()
    def run(self, ctx, clip_vision, image, crop):
        _expect(clip_vision, ClipVision, "clip_vision", "a CLIP_VISION model")
        if image.ndim != 4 or image.shape[-1] < 3:
            raise ValueError(f"image: expected an RGB IMAGE batch [B,H,W,3], got shape {tuple(image.shape)}")
        with ctx.devices.use(clip_vision) as model:
            return (model.encode(image, crop=crop == "center"),)


@node(category="loaders", display_name="Load Style Model")
class StyleModelLoader:
    """Load a T2I-Adapter style model (`style_embedding` layout)."""
    inputs = [ModelFile("style_model_name", folder="style_models")]
    outputs = [Output("STYLE_MODEL", STYLE_MODEL)]

    @classmethod
    def fingerprint(cls, env, style_model_name):
        return env.models.fingerprint("style_models", style_model_name)

    def run(self, ctx, style_model_name):
        return (ctx.models.load("style_models", style_model_name, build_style_model),)


def _grow_attention_mask(extras: dict, txt: torch.Tensor, n: int, strength: float, strength_type: str) -> None:
    """ComfyUI's attn_bias bookkeeping: the entry's attention mask grows by the n style tokens, which get
    a bias of log(strength) (SD U-Nets do not read the mask; models that do, see the tokens weighted)."""
    bias = torch.log(torch.tensor([strength if strength_type == "attn_bias" else 1.0]))
    ref_h, ref_w = extras.get("attention_mask_img_shape", (1, 1))
    n_ref, n_txt = ref_h * ref_w, txt.shape[1]
    mask = extras.get("attention_mask")
    if mask is None:
        mask = torch.zeros((txt.shape[0], n_txt + n_ref, n_txt + n_ref), dtype=torch.float16)
    if mask.dtype == torch.bool:
        mask = torch.log(mask.to(dtype=torch.float16))
    grown = torch.zeros((txt.shape[0], n_txt + n + n_ref, n_txt + n + n_ref), dtype=torch.float16)
    grown[:, :n_txt, :n_txt] = mask[:, :n_txt, :n_txt]
    grown[:, :n_txt, n_txt + n:] = mask[:, :n_txt, n_txt:]
    grown[:, n_txt + n:, :n_txt] = mask[:, n_txt:, :n_txt]
    grown[:, n_txt + n:, n_txt + n:] = mask[:, n_txt:, n_txt:]
    grown[:, :n_txt, n_txt:n_txt + n] = bias
    grown[:, n_txt + n:, n_txt:n_txt + n] = bias
    extras["attention_mask"] = grown.to(txt.device)
    extras["attention_mask_img_shape"] = (ref_h, ref_w)


@node(category="conditioning/style_model", display_name="Apply Style Model")
class StyleModelApply:
    """Append a style model's tokens (from a CLIP vision encoding) to every conditioning entry's text
    tokens. multiply: the tokens are scaled by strength; attn_bias: attention to them is biased by log(strength)."""
    inputs = [Input("conditioning", CONDITIONING), Input("style_model", STYLE_MODEL),
              Input("clip_vision_output", CLIP_VISION_OUTPUT),
              Float("strength", 1.0, min=0.0, max=10.0, step=0.001),
              Choice("strength_type", ["multiply", "attn_bias"])]
    outputs = [Output("CONDITIONING", CONDITIONING)]

    @torch.no_grad()
    def run(self, ctx, conditioning, style_model, clip_vision_output, strength, strength_type):
        _expect(style_model, StyleModel, "style_model", "a STYLE_MODEL")
        if not isinstance(clip_vision_output, ClipVisionOutput):
            raise ValueError("clip_vision_output: expected the output of CLIPVisionEncode")
        with ctx.devices.use(style_model) as model:
            tokens = model.get_cond(clip_vision_output).cpu()
        tokens = tokens.flatten(start_dim=0, end_dim=1).unsqueeze(dim=0)
        if strength_type == "multiply":
            tokens = tokens * strength
        out = []
        for txt, extras in conditioning:
            if tokens.shape[-1] != txt.shape[-1]:
                raise ValueError(f"style_model: its tokens are {tokens.shape[-1]} wide, the conditioning's text "
                                 f"{txt.shape[-1]}; the style model does not fit this text encoder")
            extras = dict(extras)
            if "attention_mask" in extras or (strength_type == "attn_bias" and strength != 1.0):
                _grow_attention_mask(extras, txt, tokens.shape[1], strength, strength_type)
            out.append([torch.cat((txt, tokens.to(txt)), dim=1), extras])
        return (out,)


@node(category="conditioning", display_name="unCLIPConditioning")  # ComfyUI has no display name: the class name
class unCLIPConditioning:
    """Add a CLIP vision image embedding to the conditioning for unCLIP models (noise-augmented by
    noise_augmentation at sampling time, scaled by strength). Entries accumulate."""
    inputs = [Input("conditioning", CONDITIONING), Input("clip_vision_output", CLIP_VISION_OUTPUT),
              Float("strength", 1.0, min=-10.0, max=10.0, step=0.01),
              Float("noise_augmentation", 0.0, min=0.0, max=1.0, step=0.01)]
    outputs = [Output("CONDITIONING", CONDITIONING)]

    def run(self, ctx, conditioning, clip_vision_output, strength, noise_augmentation):
        if strength == 0:
            return (conditioning,)
        if not isinstance(clip_vision_output, ClipVisionOutput):
            raise ValueError("clip_vision_output: expected the output of CLIPVisionEncode")
        item = {"clip_vision_output": clip_vision_output, "strength": strength,
                "noise_augmentation": noise_augmentation}
        out = []
        for txt, extras in conditioning:
            extras = dict(extras)
            extras["unclip_conditioning"] = list(extras.get("unclip_conditioning") or []) + [item]
            out.append([txt, extras])
        return (out,)


def _unclip_vision(weights) -> ModelHandle:
    """The image encoder inside an unCLIP checkpoint (`embedder.model.visual.*`)."""
    sd = open_clip_to_transformers(weights.tensors, UNCLIP_VISION_PREFIX)
    if not sd:
        raise ValueError(f"ckpt_name: {weights.name} has no unCLIP image encoder ({UNCLIP_VISION_PREFIX}* keys); "
                         "use CheckpointLoaderSimple for checkpoints without one")
    module, _missing, _unexpected = build_clip_vision(sd, weights.name, weights.metadata)
    return ModelHandle(module, weights.path.stem + "-clip-vision", info={"kind": "clip_vision", **module.config})


@node(category="loaders", display_name="unCLIPCheckpointLoader")
class unCLIPCheckpointLoader:
    """Load an SD2.1 unCLIP checkpoint: the model, text encoder and VAE, and its CLIP vision encoder."""
    inputs = [ModelFile("ckpt_name", folder="checkpoints")]
    outputs = [Output("MODEL", MODEL), Output("CLIP", CLIP), Output("VAE", VAE), Output("CLIP_VISION", CLIP_VISION)]

    @classmethod
    def fingerprint(cls, env, ckpt_name):
        return env.models.fingerprint("checkpoints", ckpt_name)

    def run(self, ctx, ckpt_name):
        model, clip, vae = ctx.models.load("checkpoints", ckpt_name, checkpoint_handles)
        if model is None or clip is None or vae is None:
            raise ValueError(f"ckpt_name: {ckpt_name} lacks a U-Net, text encoder or VAE")
        clip_vision = ctx.models.load("checkpoints", ckpt_name, _unclip_vision)
        return model, clip, vae, clip_vision


@node(category="conditioning/instructpix2pix", display_name="InstructPixToPixConditioning")
class InstructPixToPixConditioning:
    """For InstructPix2Pix models: the source image's latent goes to both conditionings (the U-Net's
    extra input channels); the latent output is an empty latent of the image's size."""
    inputs = [Input("positive", CONDITIONING), Input("negative", CONDITIONING), Input("vae", VAE),
              Input("pixels", IMAGE)]
    outputs = [Output("positive", CONDITIONING), Output("negative", CONDITIONING), Output("latent", LATENT)]

    def run(self, ctx, positive, negative, vae, pixels):
        concat_latent = vae_encode(ctx, vae, pixels)  # cropped to the VAE's cell as ComfyUI does
        sides = []
        for conditioning in (positive, negative):
            sides.append([[txt, {**extras, "concat_latent_image": concat_latent}] for txt, extras in conditioning])
        return sides[0], sides[1], {"samples": torch.zeros_like(concat_latent)}
