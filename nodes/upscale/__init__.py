"""Upscale pack: upscaler models through spandrel (ESRGAN, Real-ESRGAN, SwinIR ...), tiled."""
