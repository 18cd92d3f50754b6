"""Test pack: patching the MODEL through ComfyUI's ModelPatcher API, as model-patch packs do
(clone(), then set_model_* hooks or add_patches; the input model is never changed).

Hook shapes are ComfyUI 0.8's (comfy/model_patcher.py, comfy/samplers.py): sampler_cfg_function(args) ->
noise prediction, pre-CFG functions(args) -> [cond, uncond], unet wrapper(apply_model, args) -> x0,
attn2 patch(n, context, value, extra_options) -> (n, context, value), denoise mask function(sigma, mask,
extra_options) -> mask. The rescale formula is the one of ComfyUI's RescaleCFG (comfy_extras).
"""
import torch

import comfy.model_patcher
import comfy.samplers

SEEN = {"cond_or_uncond": [], "wrapper_calls": 0, "timestep_embeddings": []}


class TestRescaleCFGPatch:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",),
                             "multiplier": ("FLOAT", {"default": 0.7, "min": 0.0, "max": 1.0, "step": 0.01})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "test_pack/model"

    def patch(self, model, multiplier):
        def rescale_cfg(args):
            cond, uncond, cond_scale = args["cond"], args["uncond"], args["cond_scale"]
            sigma = args["sigma"]
            sigma = sigma.view(sigma.shape[:1] + (1,) * (cond.ndim - 1))
            x_orig = args["input"]
            x = x_orig / (sigma * sigma + 1.0)  # in v space
            cond = ((x - (x_orig - cond)) * (sigma ** 2 + 1.0) ** 0.5) / sigma
            uncond = ((x - (x_orig - uncond)) * (sigma ** 2 + 1.0) ** 0.5) / sigma
            x_cfg = uncond + cond_scale * (cond - uncond)
            ro_pos = torch.std(cond, dim=(1, 2, 3), keepdim=True)
            ro_cfg = torch.std(x_cfg, dim=(1, 2, 3), keepdim=True)
            x_final = multiplier * x_cfg * (ro_pos / ro_cfg) + (1.0 - multiplier) * x_cfg
            return x_orig - (x - x_final * sigma / (sigma * sigma + 1.0) ** 0.5)

        m = model.clone()
        m.set_model_sampler_cfg_function(rescale_cfg)
        return (m,)


class TestOldStyleCFG:
    """The three-argument sampler_cfg_function form (cond, uncond, cond_scale) some old packs use: cond only."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",)}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "test_pack/model"

    def patch(self, model):
        m = model.clone()
        m.set_model_sampler_cfg_function(lambda cond, uncond, cond_scale: cond)
        return (m,)


class TestUnetScale:
    """A unet function wrapper scaling the x0 prediction; it records which sides each call holds."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "scale": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 2.0})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "test_pack/model"

    def patch(self, model, scale):
        def wrapper(apply_model, args):
            SEEN["wrapper_calls"] += 1
            SEEN["cond_or_uncond"].append(list(args["cond_or_uncond"]))
            c = dict(args["c"])
            if scale == 2.0:  # mute the prompt through ComfyUI's name for the text states
                c["c_crossattn"] = torch.zeros_like(c["c_crossattn"])
                return apply_model(args["input"], args["timestep"], **c)
            return apply_model(args["input"], args["timestep"], **c) * scale

        m = model.clone()
        m.set_model_unet_function_wrapper(wrapper)
        return (m,)


class TestSwapPreCFG:
    """A pre-CFG function that swaps the cond and uncond predictions (so the negative prompt leads)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",)}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "test_pack/model"

    def patch(self, model):
        m = model.clone()
        m.set_model_sampler_pre_cfg_function(lambda args: [args["conds_out"][1], args["conds_out"][0]])
        return (m,)


class TestMuteCrossAttention:
    """An attn2 patch zeroing the text context: the prompt no longer reaches the U-Net."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",)}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "test_pack/model"

    def patch(self, model):
        m = model.clone()
        m.set_model_attn2_patch(lambda n, context, value, extra: (n, torch.zeros_like(context), torch.zeros_like(value)))
        return (m,)


class TestIgnoreNoiseMask:
    """A denoise mask function that repaints everything (mask of ones)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",)}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "test_pack/model"

    def patch(self, model):
        m = model.clone()
        m.set_model_denoise_mask_function(lambda sigma, denoise_mask, extra_options: torch.ones_like(denoise_mask))
        return (m,)


class TestMergeSimple:
    """ComfyUI's ModelMergeSimple written against the ModelPatcher API (get_key_patches / add_patches)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model1": ("MODEL",), "model2": ("MODEL",),
                             "ratio": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "merge"
    CATEGORY = "test_pack/model"

    def merge(self, model1, model2, ratio):
        m = model1.clone()
        kp = model2.get_key_patches("diffusion_model.")
        for k in kp:
            m.add_patches({k: kp[k]}, 1.0 - ratio, ratio)
        return (m,)


class TestModelFacts:
    """What packs read off a MODEL: its sampling, latent format, dtype, devices and size."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",)}}

    RETURN_TYPES = ("STRING", "FLOAT", "FLOAT", "INT", "BOOLEAN")
    RETURN_NAMES = ("facts", "sigma_min", "sigma_max", "latent_channels", "is_clone")
    FUNCTION = "read"
    CATEGORY = "test_pack/model"

    def read(self, model):
        ms = model.get_model_object("model_sampling")
        assert ms is model.model.model_sampling
        t = ms.timestep(ms.sigma_max)
        facts = {"dtype": str(model.model_dtype()), "load_device": str(model.load_device),
                 "offload_device": str(model.offload_device), "size": model.model_size() > 0,
                 "unet": type(model.get_model_object("diffusion_model")).__name__,
                 "t_max": float(t), "scale_factor": model.model.latent_format.scale_factor}
        x = torch.ones(1, 4, 2, 2)
        facts["x_in"] = float(ms.calculate_input(torch.tensor([1.0]), x)[0, 0, 0, 0])
        return (repr(facts), float(ms.sigma_min), float(ms.sigma_max), model.model.latent_format.latent_channels,
                model.clone().is_clone(model))


class TestPostCFGHelper:
    """comfy.model_patcher.set_model_options_post_cfg_function on the options dict (as sampler packs do)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",)}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "test_pack/model"

    def patch(self, model):
        m = model.clone()
        m.model_options = comfy.model_patcher.set_model_options_post_cfg_function(
            m.model_options, lambda args: args["cond_denoised"])
        return (m,)


class TestRecomputeCond:
    """A post-CFG hook that calls the model again through comfy.samplers.calc_cond_batch (as SAG-like packs do)
    and returns the cond prediction alone."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",)}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "test_pack/model"

    def patch(self, model):
        def post_cfg(args):
            (cond,) = comfy.samplers.calc_cond_batch(args["model"], [args["cond"]], args["input"], args["sigma"],
                                                     args["model_options"])
            return cond

        m = model.clone()
        m.set_model_sampler_post_cfg_function(post_cfg)
        return (m,)


class TestSamplingFunctionScale:
    """A CFG function that recomputes the guided x0 through comfy.samplers.sampling_function at its own scale,
    as custom guiders' predict_noise do (the hook itself is taken out of the options it passes on)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "scale": ("FLOAT", {"default": 3.0, "min": 0.0, "max": 30.0})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "test_pack/model"

    def patch(self, model, scale):
        def cfg(args):
            options = {k: v for k, v in args["model_options"].items() if k != "sampler_cfg_function"}
            denoised = comfy.samplers.sampling_function(args["model"], args["input"], args["sigma"],
                                                        args["input_uncond"], args["input_cond"], scale,
                                                        model_options=options)
            return args["input"] - denoised

        m = model.clone()
        m.set_model_sampler_cfg_function(cfg)
        return (m,)


class TestUnsupportedPatch:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",)}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "test_pack/model"

    def patch(self, model):
        m = model.clone()
        m.set_model_input_block_patch(lambda h, opts: h)
        return (m,)


NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls in (
    TestRescaleCFGPatch, TestOldStyleCFG, TestUnetScale, TestSwapPreCFG, TestMuteCrossAttention, TestIgnoreNoiseMask,
    TestMergeSimple, TestModelFacts, TestPostCFGHelper, TestRecomputeCond, TestSamplingFunctionScale, TestUnsupportedPatch)}
