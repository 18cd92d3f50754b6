"""The test plugin written into a temporary custom_nodes folder (loaded as a real plugin would be).

Until the diffusion pack lands, `GradientSteps` stands in for a sampler: it reports progress
with a preview image each step, honours interrupt, and outputs an IMAGE.
"""

PLUGIN = '''
import time

import torch
from PIL import Image

from nodegraph import IMAGE, INT, Float, Input, Int, Output, String, node


@node(category="test")
class GradientSteps:
    """An image made over `steps` steps; each step reports progress with a preview."""
    inputs = [Int("steps", 3, min=1, max=1000), Int("size", 16, min=1, max=256),
              Int("red", 200, min=0, max=255), Int("seed", 0, min=0, max=2**31),
              Float("delay", 0.0, min=0.0, max=10.0)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, steps, size, red, seed, delay):
        for i in range(steps):
            if delay:
                time.sleep(delay)
            level = int(255 * (i + 1) / steps)
            ctx.progress(i + 1, steps, preview=Image.new("RGB", (size, size), (red, level, 0)))
        image = torch.zeros(1, size, size, 3)
        image[..., 0] = red / 255.0
        image[..., 1] = 1.0
        return image


@node(category="test")
class Explode:
    """Always fails."""
    inputs = [Input("image", IMAGE), String("message", "kaboom")]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image, message):
        raise RuntimeError(message)


@node(category="test")
class Stubborn:
    """Sleeps without progress points (cannot be interrupted mid-node)."""
    inputs = [Float("seconds", 0.1, min=0.0, max=30.0)]
    outputs = [Output("INT", INT)]

    def run(self, ctx, seconds):
        time.sleep(seconds)
        return 1


@node(category="test")
class HogGIL:
    """Holds the GIL in one C call for a long time (a sum over a range): no progress point, no thread
    of this process runs meanwhile. In the server's process it would freeze every route."""
    inputs = [Int("terms", 10**11, min=1, max=10**12)]
    outputs = [Output("INT", INT)]

    def run(self, ctx, terms):
        return sum(range(terms)) % 1000


@node(category="test")
class Segfault:
    """Crashes the process it runs in (reads address 0 through ctypes)."""
    inputs = [Int("value", 0, min=0, max=10)]
    outputs = [Output("INT", INT)]

    def run(self, ctx, value):
        import ctypes

        return len(ctypes.string_at(0)) + value  # strlen(NULL)


@node(category="test", output_node=True)
class QuickSave:
    """Saves images as output PNGs (as SaveImage does) without the built-in packs: chaos tests
    start servers with this plugin alone, which is quicker."""
    inputs = [Input("images", IMAGE), String("filename_prefix", "quick")]
    outputs = []

    def run(self, ctx, images, filename_prefix):
        from nodegraph.images import save_images

        ctx.show(images=save_images(ctx, images, filename_prefix))
        return ()


@node(category="test", output_node=True)
class ShowInt:
    """Shows an integer (as PreviewAny does), for servers without the built-in packs."""
    inputs = [Input("value", INT)]
    outputs = []

    def run(self, ctx, value):
        ctx.show(text=[str(value)])
        return ()
'''


def write_plugin(folder) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "server_testpack.py").write_text(PLUGIN)
