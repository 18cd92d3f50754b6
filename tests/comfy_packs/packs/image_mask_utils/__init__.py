"""Test pack: V1 image/mask utilities written as ComfyUI packs write them (relative imports, a
pack-level mapping merged from submodules, folder_paths, comfy.utils.ProgressBar, a custom type)."""
from .images import IMAGE_MAPPINGS, IMAGE_NAMES
from .masks import MASK_MAPPINGS, MASK_NAMES

NODE_CLASS_MAPPINGS = {**IMAGE_MAPPINGS, **MASK_MAPPINGS}
NODE_DISPLAY_NAME_MAPPINGS = {**IMAGE_NAMES, **MASK_NAMES}
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
