"""What several modules of the image pack share: the size limit (batch cycling is nodegraph's
repeat_to_batch)."""
from __future__ import annotations

MAX_SIDE = 16384  # ComfyUI's MAX_RESOLUTION
