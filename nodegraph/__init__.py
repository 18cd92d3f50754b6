"""nodegraph: a node-graph workflow engine for generative image pipelines.

The public API for writing nodes and running workflows lives here. Node packs import only what this
module exports (plus torch, numpy, PIL and the like); tests/test_import_map.py holds them to it.
"""
from .devices import ModelHandle, run_in_chunks
from .expansion import ExecutionBlocker, Expansion
from .images import (center_crop_margins, common_upscale, composite, filename_prefix_problem, pil_to_tensor, pixel_budget_problem,
                     repeat_to_batch, save_images, tensor_to_pil, tensor_to_pil_truncated)
from .model_files import ModelFileError, WeightsFile, read_weights
from .providers import provide, provided
from .node import (Boolean, Choice, Context, Float, Input, Int, Interrupted, ModelFile, Output, Seed, String,
                   node)
from .types import (ANY, BOOLEAN, CLIP, COMBO, CONDITIONING, CONTROL_NET, FLOAT, IMAGE, INT, LATENT, MASK, MODEL,
                    NOISE, SIGMAS, STRING, UPSCALE_MODEL, VAE, SocketType)
from .workflow import link

__version__ = "0.1.0"

__all__ = [
    # declaring nodes
    "node", "Input", "Int", "Float", "String", "Boolean", "Choice", "ModelFile", "Seed", "Output", "Context",
    "Interrupted", "Expansion", "ExecutionBlocker", "link",
    # socket types: the common vocabulary (packs declare their own with SocketType("NAME", "#colour"))
    "SocketType", "ANY", "INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", "IMAGE", "MASK", "LATENT",
    "CONDITIONING", "NOISE", "SIGMAS", "MODEL", "CLIP", "VAE", "CONTROL_NET", "UPSCALE_MODEL",
    # model files and models on devices
    "ModelFileError", "WeightsFile", "read_weights", "ModelHandle", "run_in_chunks",
    # images and batches
    "tensor_to_pil", "tensor_to_pil_truncated", "pil_to_tensor", "save_images", "filename_prefix_problem", "center_crop_margins",
    "common_upscale", "composite", "pixel_budget_problem", "repeat_to_batch",
    # services packs offer by name (the diffusion pack gives the ComfyUI layer its model surface)
    "provide", "provided",
]
