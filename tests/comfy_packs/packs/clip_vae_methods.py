"""Test pack: the CLIP and VAE methods packs call (comfy.sd.CLIP / comfy.sd.VAE in ComfyUI 0.8) and
comfy.sd's checkpoint loader."""
import folder_paths

import comfy.sd
import comfy.utils


class TestTextEncodeScheduled:
    """CLIPTextEncode as ComfyUI 0.8 writes it: tokenize + encode_from_tokens_scheduled."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP",), "text": ("STRING", {"multiline": True})}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"
    CATEGORY = "test_pack/clip"

    def encode(self, clip, text):
        return (clip.encode_from_tokens_scheduled(clip.tokenize(text)),)


class TestTextEncodePooled:
    """The older form: encode_from_tokens(return_pooled=True), on a clone set to a CLIP layer."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP",), "text": ("STRING", {"multiline": True}),
                             "layer": ("INT", {"default": -1, "min": -24, "max": -1})}}

    RETURN_TYPES = ("CONDITIONING", "CLIP")
    FUNCTION = "encode"
    CATEGORY = "test_pack/clip"

    def encode(self, clip, text, layer):
        clip = clip.clone()
        clip.clip_layer(layer)
        cond, pooled = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True)
        return ([[cond, {"pooled_output": pooled}]], clip)


class TestVAERoundTrip:
    """vae.encode / vae.decode (and the tiled forms) with IMAGE [B,H,W,C] and raw latents."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae": ("VAE",), "image": ("IMAGE",), "tiled": ("BOOLEAN", {"default": False})}}

    RETURN_TYPES = ("LATENT", "IMAGE", "INT", "INT", "INT")
    RETURN_NAMES = ("LATENT", "IMAGE", "downscale_ratio", "latent_channels", "spacial_compression")
    FUNCTION = "round_trip"
    CATEGORY = "test_pack/vae"

    def round_trip(self, vae, image, tiled):
        if tiled:
            latent = vae.encode_tiled(image, tile_x=64, tile_y=64, overlap=32)
            decoded = vae.decode_tiled(latent, tile_x=8, tile_y=8, overlap=4)
        else:
            latent = vae.encode(image)
            decoded = vae.decode(latent)
        return ({"samples": latent}, decoded, vae.downscale_ratio, vae.latent_channels,
                vae.spacial_compression_encode())


class TestCheckpointLoader:
    """A loader pack: folder_paths.get_full_path + comfy.sd.load_checkpoint_guess_config."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": (folder_paths.get_filename_list("checkpoints"),)}}

    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load"
    CATEGORY = "test_pack/loaders"

    def load(self, ckpt_name):
        path = folder_paths.get_full_path("checkpoints", ckpt_name)
        out = comfy.sd.load_checkpoint_guess_config(path, output_vae=True, output_clip=True,
                                                    embedding_directory=folder_paths.get_folder_paths("embeddings"))
        return out[:3]


class TestCLIPWeightScale:
    """CLIP add_patches with get_key_patches' weights: strength_model scales every weight (as CLIP merges do)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP",), "scale": ("FLOAT", {"default": 1.0})}}

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "scale"
    CATEGORY = "test_pack/clip"

    def scale(self, clip, scale):
        m = clip.clone()
        kp = m.get_key_patches()
        for k in kp:
            if k.endswith(".position_ids") or k.endswith(".logit_scale"):
                continue
            m.add_patches({k: kp[k]}, 0.0, scale)
        return (m,)


class TestLoraLoader:
    """ComfyUI's LoraLoader body: load_torch_file + comfy.sd.load_lora_for_models."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "clip": ("CLIP",),
                             "lora_name": (folder_paths.get_filename_list("loras"),),
                             "strength_model": ("FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0}),
                             "strength_clip": ("FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0})}}

    RETURN_TYPES = ("MODEL", "CLIP")
    FUNCTION = "load_lora"
    CATEGORY = "test_pack/loaders"

    def load_lora(self, model, clip, lora_name, strength_model, strength_clip):
        lora = comfy.utils.load_torch_file(folder_paths.get_full_path("loras", lora_name), safe_load=True)
        return comfy.sd.load_lora_for_models(model, clip, lora, strength_model, strength_clip)


NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls in (
    TestTextEncodeScheduled, TestTextEncodePooled, TestVAERoundTrip, TestCheckpointLoader, TestCLIPWeightScale,
    TestLoraLoader)}
