"""Test pack that reaches past the supported surface at import time."""
from folder_paths import a_function_comfyui_never_had  # noqa: F401

NODE_CLASS_MAPPINGS = {}
