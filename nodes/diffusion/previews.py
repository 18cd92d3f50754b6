"""Step previews that never stall the GPU.

A preview is the step's x0 projected to RGB (LatentFormat.to_rgb). On a GPU, reading it back at once
(`.cpu()`) would wait for the whole queued step and stop the host from queueing the next one. Instead
the projection is copied into pinned host memory without blocking, and emitted one step later, when
that copy has long finished; the last step's preview is emitted as soon as it is made (sampling is over).
Progress events are sent at once and touch no GPU data.
"""
from __future__ import annotations

from typing import Callable

import torch
from PIL import Image

from nodegraph import tensor_to_pil


class _Pending:
    def __init__(self, rgb: torch.Tensor) -> None:
        if rgb.device.type == "cuda":
            self.host = torch.empty(rgb.shape, dtype=rgb.dtype, pin_memory=True)
            self.host.copy_(rgb, non_blocking=True)
            self.ready = torch.cuda.Event()
            self.ready.record()
        else:
            self.host, self.ready = rgb, None

    def image(self) -> Image.Image:
        if self.ready is not None:
            self.ready.synchronize()  # waits for this copy only: the GPU is a step further by now
        return tensor_to_pil(self.host)


class StepPreviews:
    """callback(step, x0, x, total) for the samplers: progress now, the preview of a step one step later."""

    def __init__(self, progress: Callable[[int, int], None], preview: Callable[[Image.Image], None] | None,
                 latent_format, last_x0: dict | None = None) -> None:
        self.progress, self.preview, self.latent_format, self.last_x0 = progress, preview, latent_format, last_x0
        self.pending: _Pending | None = None

    def __call__(self, step: int, x0: torch.Tensor, x: torch.Tensor, total: int) -> None:
        if self.last_x0 is not None:
            self.last_x0["x0"] = x0
        self.progress(step + 1, total)
        if self.preview is None:  # the job wants no previews: nothing to project or copy
            return
        current = _Pending(self.latent_format.to_rgb(x0[:1])[0])
        self.flush()
        self.pending = current
        if step + 1 >= total:
            self.flush()

    def flush(self) -> None:
        """Emit the preview still waiting, if any."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            self.preview(pending.image())
