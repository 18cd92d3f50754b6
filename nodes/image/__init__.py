"""Image pack: images in and out, resizing, geometry, adjustments, compositing, masks and ControlNet
preprocessors, one module per theme (as ComfyUI's comfy_extras). This file only gathers them.

Names and inputs follow ComfyUI's nodes so its workflows run unchanged. The pack imports only
nodegraph's public API, never another pack.
"""
from __future__ import annotations

from .batch import *  # noqa: F401,F403
from .compositing import *  # noqa: F401,F403
from .io import *  # noqa: F401,F403
from .masks import *  # noqa: F401,F403
from .morphology import *  # noqa: F401,F403
from .postprocessing import *  # noqa: F401,F403
from .preprocessors import *  # noqa: F401,F403
from .scale import *  # noqa: F401,F403
from .transform import *  # noqa: F401,F403
from .websocket import *  # noqa: F401,F403
