"""Evaluation node pack: FID, KID and precision/recall between image sets, with Inception-v3
(pytorch-fid layout) or a small conv feature extractor, and a folder-of-images loader.

Feature-extractor files go in models/feature_extractors (e.g. pt_inception-2015-12-05-6726825d.pth).
"""
from __future__ import annotations

from .nodes import *  # noqa: F401,F403
from .nodes import FEATURE_EXTRACTOR, FEATURES

__all__ = ["FEATURE_EXTRACTOR", "FEATURES"]
