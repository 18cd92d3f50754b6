"""A ComfyUI pack with a custom guider, as KJNodes' ScheduledCFGGuidance is one: a comfy.samplers.CFGGuider
subclass whose predict_noise applies its CFG scale only inside a window of the run, read from the sigmas
ComfyUI's sampler puts in model_options["transformer_options"]["sample_sigmas"]."""
import comfy.samplers


class WindowedCFGGuider(comfy.samplers.CFGGuider):
    def set_window(self, start_percent: float, end_percent: float) -> None:
        self.start_percent, self.end_percent = start_percent, end_percent

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        sigmas = model_options["transformer_options"]["sample_sigmas"]
        step = int((sigmas == timestep[0]).nonzero()[0].item())
        progress = step / (len(sigmas) - 1)
        scale = self.cfg if self.start_percent <= progress <= self.end_percent else 1.0
        return comfy.samplers.sampling_function(self.inner_model, x, timestep, self.conds.get("negative"),
                                                self.conds.get("positive"), scale, model_options=model_options,
                                                seed=seed)


class TestWindowedCFGGuider:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "positive": ("CONDITIONING",), "negative": ("CONDITIONING",),
                             "cfg": ("FLOAT", {"default": 6.0, "min": 0.0, "max": 100.0, "step": 0.01}),
                             "start_percent": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01}),
                             "end_percent": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01})}}

    RETURN_TYPES = ("GUIDER",)
    FUNCTION = "make"
    CATEGORY = "test_pack/sampling"

    def make(self, model, positive, negative, cfg, start_percent, end_percent):
        guider = WindowedCFGGuider(model)
        guider.set_conds(positive, negative)
        guider.set_cfg(cfg)
        guider.set_window(start_percent, end_percent)
        return (guider,)


NODE_CLASS_MAPPINGS = {"TestWindowedCFGGuider": TestWindowedCFGGuider}
