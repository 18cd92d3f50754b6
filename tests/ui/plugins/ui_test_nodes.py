"""Nodes for the editor's browser tests, loaded as a real plugin (the server's --plugins folder).

`UITestSteps` stands in for a sampler until the diffusion pack's txt2img runs in tests: it
takes an image, reports progress with a live preview at each step (honouring interrupt), and
has a seed with "control after generate", so the editor's run feedback is tested for real.
"""
import time

import torch
from PIL import Image

from nodegraph import IMAGE, Boolean, Float, Input, Int, Output, Seed, node


@node(category="testing")
class UITestSteps:
    """Tint an image over `steps` steps, reporting progress and a preview at each one."""

    inputs = [Input("image", IMAGE), Int("steps", 4, min=1, max=200), Float("delay", 0.1, min=0.0, max=5.0, step=0.05),
              Seed("seed", 0), Boolean("fail", False)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image, steps, delay, seed, fail):
        for i in range(steps):
            if fail and i == steps // 2:
                raise RuntimeError(f"UITestSteps was asked to fail (at step {i + 1} of {steps})")
            time.sleep(delay)
            level = int(255 * (i + 1) / steps)
            ctx.progress(i + 1, steps, preview=Image.new("RGB", (64, 64), (level, 96, 255 - level)))
        out = image.clone()
        out[..., 1] = out[..., 1] * 0.5  # a visible, checkable change: halve green
        return out
