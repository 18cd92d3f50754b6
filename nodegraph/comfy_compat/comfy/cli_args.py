"""ComfyUI's comfy.cli_args, as packs read it (`from comfy.cli_args import args`, `args.disable_metadata`,
`LatentPreviewMethod`): every option of ComfyUI 0.8's command line with its default (what
`parser.parse_args([])` gives there), and the ones nodegraph has a setting for read from it when asked:
the folders from the run's Folders (as --base-directory / --output-directory ... would set them),
`disable_metadata` and `preview_method` from the running job (our --disable-metadata / --preview-method,
which the server puts in the job's extra). A pack that assigns an option keeps its own value.
"""
from __future__ import annotations

import argparse
import enum

from .. import runtime
from ..surface import unsupported


class LatentPreviewMethod(enum.Enum):
    NoPreviews = "none"
    Auto = "auto"
    Latent2RGB = "latent2rgb"
    TAESD = "taesd"

    @classmethod
    def from_string(cls, value: str):
        return next((member for member in cls if member.value == value), None)


class PerformanceFeature(enum.Enum):
    Fp16Accumulation = "fp16_accumulation"
    Fp8MatrixMultiplication = "fp8_matrix_mult"
    CublasOps = "cublas_ops"
    AutoTune = "autotune"


# ComfyUI 0.8's defaults (comfy/cli_args.py, no arguments given), option by option
DEFAULTS = {
    "listen": "127.0.0.1", "port": 8188, "tls_keyfile": None, "tls_certfile": None, "enable_cors_header": None,
    "max_upload_size": 100, "base_directory": None, "extra_model_paths_config": None, "output_directory": None,
    "temp_directory": None, "input_directory": None, "auto_launch": False, "disable_auto_launch": False,
    "cuda_device": None, "default_device": None, "cuda_malloc": False, "disable_cuda_malloc": False,
    "force_fp32": False, "force_fp16": False, "fp32_unet": False, "fp64_unet": False, "bf16_unet": False,
    "fp16_unet": False, "fp8_e4m3fn_unet": False, "fp8_e5m2_unet": False, "fp8_e8m0fnu_unet": False,
    "fp16_vae": False, "fp32_vae": False, "bf16_vae": False, "cpu_vae": False, "fp8_e4m3fn_text_enc": False,
    "fp8_e5m2_text_enc": False, "fp16_text_enc": False, "fp32_text_enc": False, "bf16_text_enc": False,
    "force_channels_last": False, "directml": None, "oneapi_device_selector": None, "disable_ipex_optimize": False,
    "supports_fp8_compute": False, "preview_method": LatentPreviewMethod.NoPreviews, "preview_size": 512,
    "cache_classic": False, "cache_lru": 0, "cache_none": False, "cache_ram": 0,
    "use_split_cross_attention": False, "use_quad_cross_attention": False, "use_pytorch_cross_attention": False,
    "use_sage_attention": False, "use_flash_attention": False, "disable_xformers": False,
    "force_upcast_attention": False, "dont_upcast_attention": False, "enable_manager": False,
    "disable_manager_ui": False, "enable_manager_legacy_ui": False, "gpu_only": False, "highvram": False,
    "normalvram": False, "lowvram": False, "novram": False, "cpu": False, "reserve_vram": None,
    "async_offload": None, "disable_async_offload": False, "force_non_blocking": False,
    "default_hashing_function": "sha256", "disable_smart_memory": False, "deterministic": False,
    "disable_pinned_memory": False, "mmap_torch_files": False, "disable_mmap": False, "dont_print_server": False,
    "quick_test_for_ci": False, "windows_standalone_build": False, "disable_metadata": False,
    "disable_all_custom_nodes": False, "whitelist_custom_nodes": [], "disable_api_nodes": False,
    "multi_user": False, "verbose": "INFO", "log_stdout": False,
    "front_end_version": "comfyanonymous/ComfyUI@latest", "front_end_root": None, "user_directory": None,
    "enable_compress_response_body": False, "comfy_api_base": "https://api.comfy.org",
    "database_url": "sqlite:///:memory:",  # ComfyUI's is a file beside its code; nodegraph keeps none
}


def _folders():
    try:
        return runtime.folders()
    except Exception:  # noqa: BLE001 - no environment bound yet: ComfyUI's "not given" (None)
        return None


def _folder(attr: str):
    folders = _folders()
    if folders is None:
        return None
    path = folders.models.parent if attr == "base" else getattr(folders, attr)
    return str(path.resolve())


def _extra() -> dict:
    current = runtime.running()
    return dict(current.ctx.extra) if current is not None else {}


def _preview_method() -> LatentPreviewMethod:
    extra = _extra()  # the prompt's own choice, else the server's default (as nodes/diffusion reads them)
    method = LatentPreviewMethod.from_string(extra.get("preview_method") or "")
    if method is None:
        method = LatentPreviewMethod.from_string(extra.get("default_preview_method") or "")
    return method or LatentPreviewMethod.NoPreviews


# options nodegraph has a setting for, read when asked (a run may change them)
LIVE = {
    "base_directory": lambda: _folder("base"),
    "output_directory": lambda: _folder("output"),
    "input_directory": lambda: _folder("input"),
    "temp_directory": lambda: _folder("temp"),
    "disable_metadata": lambda: bool(_extra().get("no_metadata", False)),
    "preview_method": _preview_method,
}


class Args(argparse.Namespace):
    """ComfyUI's parsed options; LIVE ones come from nodegraph's settings unless a pack set them."""

    def __getattribute__(self, name: str):
        if name in LIVE and name not in object.__getattribute__(self, "__dict__"):
            return LIVE[name]()
        return object.__getattribute__(self, name)


args = Args(**{k: v for k, v in DEFAULTS.items() if k not in LIVE})
args.fast = set()  # ComfyUI: no --fast given is an empty set (packs add to it)

__getattr__ = unsupported(__name__)
