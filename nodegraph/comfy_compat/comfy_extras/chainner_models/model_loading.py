"""ComfyUI's `comfy_extras.chainner_models.model_loading`: load_state_dict builds an upscale model
from a state dict with spandrel, as ComfyUI 0.8 does."""
from __future__ import annotations

import logging

from ...surface import unsupported

log = logging.getLogger("nodegraph.comfy_compat")


def load_state_dict(state_dict):
    from spandrel import ModelLoader  # only when a node loads a model: spandrel needs torchvision

    log.warning("comfy_extras.chainner_models is deprecated in ComfyUI; the model is loaded with spandrel")
    return ModelLoader().load_from_state_dict(state_dict).eval()


__getattr__ = unsupported(__name__)
