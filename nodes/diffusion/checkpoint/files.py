"""Model files as the checkpoint readers take them: a path (read safely by nodegraph's read_weights) or
a WeightsFile the model-file service has read already, and the loader hints that nodegraph's writer
stores in the safetensors metadata."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from nodegraph import WeightsFile, read_weights

from .layout import HINTS_KEY


def weights_of(source: str | Path | WeightsFile) -> WeightsFile:
    """The tensors and metadata of a model file, read unless the service has read them."""
    return source if isinstance(source, WeightsFile) else read_weights(source)


def read_hints(metadata: Mapping[str, str]) -> dict:
    try:
        return json.loads(metadata.get(HINTS_KEY, "{}")) or {}
    except (TypeError, ValueError):
        return {}
