"""Socket types the diffusion pack declares for image conditioning (colours: ComfyUI frontend's)."""
from nodegraph import SocketType

CLIP_VISION = SocketType("CLIP_VISION", "#A8DADC")  # a CLIP vision encoder (vision.clip_vision.ClipVision)
CLIP_VISION_OUTPUT = SocketType("CLIP_VISION_OUTPUT", "#ad7452")  # its encoding of images (ClipVisionOutput)
STYLE_MODEL = SocketType("STYLE_MODEL", "#C2FFAE")  # a T2I-Adapter style model (vision.style_model.StyleModel)
GLIGEN = SocketType("GLIGEN", "#B0C4DE")  # a GLIGEN position net and fusers
