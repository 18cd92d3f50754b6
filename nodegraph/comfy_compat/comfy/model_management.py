"""ComfyUI's `comfy.model_management`, answered from nodegraph's DeviceManager.

Devices come from the environment's device manager. Interrupt goes through the running job's
RunControl (ctx.control), so `throw_exception_if_processing_interrupted()` stops only the job it
runs in. Models reach the GPU through nodegraph's own handles, so `load_models_gpu` has nothing
to do for ComfyUI's ModelPatcher lists: it says so in a debug log and returns.
"""
from __future__ import annotations

import gc
import logging
from enum import Enum

import torch

from ...node import Interrupted
from .. import runtime
from ..surface import unsupported

log = logging.getLogger("nodegraph.comfy_compat")


class VRAMState(Enum):
    DISABLED = 0
    NO_VRAM = 1
    LOW_VRAM = 2
    NORMAL_VRAM = 3
    HIGH_VRAM = 4
    SHARED = 5


class CPUState(Enum):
    GPU = 0
    CPU = 1
    MPS = 2


# Packs catch ComfyUI's exception by this name; ours is the same class, so the executor's
# `except Interrupted` sees a pack raising it as an interrupt, not as a failure.
InterruptProcessingException = Interrupted


def _devices():
    env = runtime.env()
    return env.devices if env is not None else None


def get_torch_device() -> torch.device:
    devices = _devices()
    if devices is not None:
        return devices.device
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _offload() -> torch.device:
    devices = _devices()
    return devices.offload_device if devices is not None else torch.device("cpu")


def intermediate_device() -> torch.device:
    return _offload()  # IMAGE / MASK / LATENT between nodes live on the CPU, as in ComfyUI


unet_offload_device = text_encoder_offload_device = vae_offload_device = intermediate_device
text_encoder_device = vae_device = get_torch_device


def intermediate_dtype() -> torch.dtype:
    return torch.float32


def _compute_dtype(device=None) -> torch.dtype:
    devices = _devices()
    return devices.dtype if devices is not None else torch.float32


def unet_dtype(device=None, model_params=0, supported_dtypes=None, weight_dtype=None) -> torch.dtype:
    return _compute_dtype(device)


def vae_dtype(device=None, allowed_dtypes=None) -> torch.dtype:
    return _compute_dtype(device)


def text_encoder_dtype(device=None) -> torch.dtype:
    return _compute_dtype(device)


def cpu_mode() -> bool:
    return get_torch_device().type == "cpu"


def mps_mode() -> bool:
    return get_torch_device().type == "mps"


def is_device_cpu(device) -> bool:
    return getattr(device, "type", device) == "cpu"


def is_device_mps(device) -> bool:
    return getattr(device, "type", device) == "mps"


def is_device_cuda(device) -> bool:
    return getattr(device, "type", device) == "cuda"


def is_nvidia() -> bool:
    return get_torch_device().type == "cuda" and torch.version.cuda is not None


def is_intel_xpu() -> bool:
    return False


def get_autocast_device(dev) -> str:
    return getattr(dev, "type", "cuda")


def xformers_enabled() -> bool:
    return False  # nodegraph uses PyTorch's SDPA attention


xformers_enabled_vae = xformers_enabled


def pytorch_attention_enabled() -> bool:
    return True


def get_torch_device_name(device) -> str:
    if getattr(device, "type", None) == "cuda":
        return f"{device} {torch.cuda.get_device_name(device)}"
    return str(device)


def get_total_memory(dev=None, torch_total_too=False):
    dev = dev or get_torch_device()
    if getattr(dev, "type", None) == "cuda":
        total = torch.cuda.get_device_properties(dev).total_memory
    else:
        import psutil

        total = psutil.virtual_memory().total
    return (total, total) if torch_total_too else total


def get_free_memory(dev=None, torch_free_too=False):
    dev = dev or get_torch_device()
    if getattr(dev, "type", None) == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
    else:
        import psutil

        free = psutil.virtual_memory().available
    return (free, free) if torch_free_too else free


def soft_empty_cache(force: bool = False) -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.ipc_collect()


def unload_all_models() -> None:
    devices = _devices()
    if devices is not None:
        devices.free()


def cleanup_models_gc() -> None:
    gc.collect()


def cleanup_models() -> None:
    pass  # nodegraph's device manager drops unreferenced models itself


def free_memory(memory_required, device, keep_loaded=()) -> None:
    devices = _devices()
    if devices is not None:
        devices.free()


def load_models_gpu(models, memory_required=0, force_patch_weights=False, minimum_memory_required=None,
                    force_full_load=False) -> None:
    """Nothing to do: nodegraph's model handles are placed on the device when a node uses them."""
    log.debug("load_models_gpu(%d model(s)) ignored: nodegraph's device manager places models itself",
              len(models) if hasattr(models, "__len__") else -1)


def load_model_gpu(model) -> None:
    load_models_gpu([model])


def processing_interrupted() -> bool:
    current = runtime.running()
    return current is not None and current.ctx.control.interrupted


def throw_exception_if_processing_interrupted() -> None:
    current = runtime.running()
    if current is not None:
        current.ctx.check_interrupt()


def interrupt_current_processing(value: bool = True) -> None:
    current = runtime.running()
    if current is not None and value:
        current.ctx.control.interrupt()


vram_state = VRAMState.NORMAL_VRAM
cpu_state = CPUState.GPU if torch.cuda.is_available() else CPUState.CPU

# ComfyUI catches this around big allocations to retry in tiles
OOM_EXCEPTION = torch.cuda.OutOfMemoryError if hasattr(torch.cuda, "OutOfMemoryError") else Exception


def is_directml_enabled() -> bool:
    return False  # nodegraph's devices are cuda / mps / cpu


def should_use_fp16(device=None, model_params=0, prioritize_performance=True, manual_cast=False) -> bool:
    return not (device is not None and is_device_cpu(device)) and _compute_dtype(device) == torch.float16


def should_use_bf16(device=None, model_params=0, prioritize_performance=True, manual_cast=False) -> bool:
    return not (device is not None and is_device_cpu(device)) and _compute_dtype(device) == torch.bfloat16


def cast_to(weight, dtype=None, device=None, non_blocking=False, copy=False, stream=None):
    """weight on `device` in `dtype` (unchanged when it already is and no copy is asked for)."""
    if (device is None or weight.device == torch.device(device)) and (dtype is None or weight.dtype == dtype) and not copy:
        return weight
    return weight.to(device=device, dtype=dtype, non_blocking=non_blocking, copy=copy)


__getattr__ = unsupported(__name__)
