"""Socket types the diffusion pack declares for ComfyUI's custom-sampling family (NOISE and SIGMAS are the
engine's). Colours are ComfyUI frontend's."""
from nodegraph import SocketType

SAMPLER = SocketType("SAMPLER", "#ecb4b4")  # a sampler with its options (sampling.SamplerChoice)
GUIDER = SocketType("GUIDER", "#66ffff")  # a model with its guidance (custom_sampler_nodes.Guider)
