"""Test pack: sampling through ComfyUI's Python API, as sampler packs do (comfy.samplers.KSAMPLER from a
function, comfy.k_diffusion.sampling inside it, comfy.sample.sample, nodes.common_ksampler,
latent_preview.prepare_callback, calculate_sigmas, the SAMPLERS / SCHEDULERS lists as combos)."""
import torch

import comfy.k_diffusion.sampling
import comfy.sample
import comfy.samplers
import latent_preview
import nodes


@torch.no_grad()
def sample_plain_euler(model, x, sigmas, extra_args=None, callback=None, disable=None, s_scale=1.0):
    """Euler, as k-diffusion writes it; s_scale scales each step (1.0: plain Euler)."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        d = (x - denoised) / sigmas[i]
        x = x + d * (sigmas[i + 1] - sigmas[i]) * s_scale
    return x


def sample_ancestral_via_kdiffusion(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """A pack sampler that hands over to ComfyUI's own k-diffusion function (the seed rides in extra_args)."""
    assert "seed" in extra_args and "model_options" in extra_args
    return comfy.k_diffusion.sampling.sample_euler_ancestral(model, x, sigmas, extra_args=extra_args,
                                                             callback=callback, disable=disable)


class TestPythonEulerSampler:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"s_scale": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 2.0})}}

    RETURN_TYPES = ("SAMPLER",)
    FUNCTION = "get_sampler"
    CATEGORY = "test_pack/sampling"

    def get_sampler(self, s_scale):
        return (comfy.samplers.KSAMPLER(sample_plain_euler, extra_options={"s_scale": s_scale}),)


class TestKDiffusionSampler:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("SAMPLER",)
    FUNCTION = "get_sampler"
    CATEGORY = "test_pack/sampling"

    def get_sampler(self):
        return (comfy.samplers.KSAMPLER(sample_ancestral_via_kdiffusion),)


def _ksampler_inputs():
    return {"model": ("MODEL",), "seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff}),
            "steps": ("INT", {"default": 20, "min": 1, "max": 10000}),
            "cfg": ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0}),
            "sampler_name": (comfy.samplers.KSampler.SAMPLERS,), "scheduler": (comfy.samplers.KSampler.SCHEDULERS,),
            "positive": ("CONDITIONING",), "negative": ("CONDITIONING",), "latent_image": ("LATENT",),
            "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0})}


class TestCommonKSampler:
    """A KSampler clone calling nodes.common_ksampler (what many sampler packs wrap)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": _ksampler_inputs()}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "sample"
    CATEGORY = "test_pack/sampling"

    def sample(self, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise=1.0):
        return nodes.common_ksampler(model, seed, steps, cfg, sampler_name, scheduler, positive, negative,
                                     latent_image, denoise=denoise)


class TestSampleAPI:
    """KSampler written on comfy.sample (ComfyUI's common_ksampler body) with latent_preview's callback."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": _ksampler_inputs()}

    RETURN_TYPES = ("LATENT", "LATENT")
    RETURN_NAMES = ("LATENT", "last_x0")
    FUNCTION = "sample"
    CATEGORY = "test_pack/sampling"

    def sample(self, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise=1.0):
        latent = comfy.sample.fix_empty_latent_channels(model, latent_image["samples"])
        noise = comfy.sample.prepare_noise(latent, seed, latent_image.get("batch_index"))
        x0 = {}
        callback = latent_preview.prepare_callback(model, steps, x0)
        samples = comfy.sample.sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                                      denoise=denoise, noise_mask=latent_image.get("noise_mask"), callback=callback,
                                      seed=seed)
        out = latent_image.copy()
        out["samples"] = samples
        return (out, {"samples": model.model.process_latent_out(x0["x0"].cpu())})


class TestCustomSampleAPI:
    """comfy.sample.sample_custom with a KSAMPLER and sigmas from comfy.samplers.calculate_sigmas."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "seed": ("INT", {"default": 0}), "steps": ("INT", {"default": 4}),
                             "cfg": ("FLOAT", {"default": 8.0}), "scheduler": (comfy.samplers.SCHEDULER_NAMES,),
                             "positive": ("CONDITIONING",), "negative": ("CONDITIONING",),
                             "latent_image": ("LATENT",), "sampler": ("SAMPLER",)}}

    RETURN_TYPES = ("LATENT", "SIGMAS")
    FUNCTION = "sample"
    CATEGORY = "test_pack/sampling"

    def sample(self, model, seed, steps, cfg, scheduler, positive, negative, latent_image, sampler):
        sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, steps)
        latent = latent_image["samples"]
        noise = comfy.sample.prepare_noise(latent, seed)
        samples = comfy.sample.sample_custom(model, noise, cfg, sampler, sigmas, positive, negative, latent, seed=seed)
        return ({"samples": samples}, sigmas)


class TestGuiderSample:
    """Sampling with comfy.samplers.CFGGuider directly (set_conds, set_cfg, sample)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "positive": ("CONDITIONING",), "negative": ("CONDITIONING",),
                             "cfg": ("FLOAT", {"default": 8.0}), "sampler": ("SAMPLER",), "sigmas": ("SIGMAS",),
                             "latent_image": ("LATENT",), "seed": ("INT", {"default": 0})}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "sample"
    CATEGORY = "test_pack/sampling"

    def sample(self, model, positive, negative, cfg, sampler, sigmas, latent_image, seed):
        guider = comfy.samplers.CFGGuider(model)
        guider.set_conds(positive, negative)
        guider.set_cfg(cfg)
        latent = latent_image["samples"]
        noise = comfy.sample.prepare_noise(latent, seed)
        callback = latent_preview.prepare_callback(model, sigmas.shape[-1] - 1)
        return ({"samples": guider.sample(noise, latent, sampler, sigmas, callback=callback, seed=seed)},)


class TestMakeGuider:
    """A GUIDER made with comfy.samplers.CFGGuider (for our SamplerCustomAdvanced); `custom` subclasses it
    with its own predict_noise, which nodegraph refuses rather than ignores."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "positive": ("CONDITIONING",), "negative": ("CONDITIONING",),
                             "cfg": ("FLOAT", {"default": 8.0}), "custom": ("BOOLEAN", {"default": False})}}

    RETURN_TYPES = ("GUIDER",)
    FUNCTION = "make"
    CATEGORY = "test_pack/sampling"

    def make(self, model, positive, negative, cfg, custom):
        guider = (HalfGuider if custom else comfy.samplers.CFGGuider)(model)
        guider.set_conds(positive, negative)
        guider.set_cfg(cfg)
        return (guider,)


class HalfGuider(comfy.samplers.CFGGuider):
    def predict_noise(self, x, timestep, model_options={}, seed=None):
        return x * 0.5


NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls in (
    TestMakeGuider, TestPythonEulerSampler, TestKDiffusionSampler, TestCommonKSampler, TestSampleAPI, TestCustomSampleAPI,
    TestGuiderSample)}
