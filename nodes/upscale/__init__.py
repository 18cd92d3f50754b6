"""Upscale pack: upscaler models through spandrel (ESRGAN, Real-ESRGAN, SwinIR ...), tiled.

UpscaleModelLoader reads a file from the "upscale_models" folder (the user's models/upscale_models,
then the shipped nodes/upscale/weights, made by training/train_upscaler.py) and
ImageUpscaleWithModel runs it over overlapping tiles. spandrel is imported on first use, without
torchvision (see spandrel_import.py).
"""
from __future__ import annotations

from pathlib import Path

from .nodes import ImageUpscaleWithModel, UpscaleModelLoader

PACK_DIR = Path(__file__).parent
MODEL_FOLDERS = {"upscale_models": [PACK_DIR / "weights"]}

__all__ = ["MODEL_FOLDERS", "ImageUpscaleWithModel", "UpscaleModelLoader"]
