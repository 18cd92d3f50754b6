"""nodegraph: a node-graph workflow engine for generative image pipelines.

The public API for writing nodes and running workflows lives here.
"""
from .node import (Boolean, Choice, Context, Float, Input, Int, Interrupted, ModelFile, Output, Seed, String,
                   node)
from .types import (ANY, BOOLEAN, CLIP, COMBO, CONDITIONING, CONTROL_NET, DISCRIMINATOR, FLOAT, GAN, IMAGE, INT,
                    LATENT, MASK, MODEL, NOISE, SIGMAS, STRING, UPSCALE_MODEL, VAE, SocketType)

__version__ = "0.1.0"

__all__ = [
    "node", "Input", "Int", "Float", "String", "Boolean", "Choice", "ModelFile", "Seed", "Output", "Context",
    "Interrupted", "SocketType", "ANY", "INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", "IMAGE", "MASK", "LATENT",
    "CONDITIONING", "NOISE", "SIGMAS", "MODEL", "CLIP", "VAE", "CONTROL_NET", "UPSCALE_MODEL", "GAN",
    "DISCRIMINATOR",
]
