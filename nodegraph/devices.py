"""Devices and models: where weights live and in which dtype.

One DeviceManager per process decides placement. Nodes never move modules themselves:

    with ctx.devices.use(handle) as module:   # on the compute device, patches applied
        out = module(x)

- Device choice: cuda, then mps, then cpu; dtype bf16 (or fp16) on CUDA, fp16 on MPS, fp32 on CPU.
  A handle may list the dtypes its model runs safely in, best first (info["inference_dtypes"], as
  ComfyUI's supported_inference_dtypes): on CUDA, unless a dtype was given, the first one the GPU
  runs fast is used (fp16 for SD1.x / SDXL U-Nets, as ComfyUI picks).
- A VRAM budget: modules used recently stay resident; when a load does not fit, the least
  recently used modules that are not in use are offloaded to CPU RAM.
- Weight patches (LoRA and friends) belong to a ModelHandle, not to the module: several handles
  share one base module, each with its own patches. Using a handle applies its patches (keeping
  a backup of the original weights) and using another handle first restores the base exactly.
- `use()` counts its holders per module. While any holder uses a module, its patches and dtype
  stay as they are: another use with the same patches joins in (nothing is re-applied), one with
  other patches waits until the last holder has released it, and one nested inside a holder of
  the same thread raises ModelInUseError (waiting would never end). After the last release the
  patches stay on until a use needs others, so using the same handle again costs nothing.
  Patches are summed per weight in float32 and rounded once; callable patches compute their delta
  on the weight's device when applied. Within the budget the original tensors themselves are the
  backup (patched copies are swapped in, restoring is free); otherwise they are copied out to RAM.
- Loaded models are shared across workflows through `load_cached(key, loader)`.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch

Patch = Callable[[torch.Tensor], torch.Tensor] | torch.Tensor  # a delta, or a function of the weight giving one


def pick_device(preferred: str | None = None) -> torch.device:
    if preferred:
        return torch.device(preferred)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def cuda_runs_fast(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether this CUDA device has fast math for the dtype (fp16 tensor cores from Volta on, bf16 from Ampere)."""
    if dtype == torch.float32:
        return True
    if dtype == torch.float16:
        return torch.cuda.get_device_capability(device) >= (7, 0)
    if dtype == torch.bfloat16:
        return torch.cuda.is_bf16_supported()
    return False


def module_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


class ModelHandle:
    """A model as nodes pass it around: a shared base module plus this handle's weight patches."""

    def __init__(self, module: torch.nn.Module, name: str = "", dtype: torch.dtype | None = None,
                 info: dict | None = None) -> None:
        self.module = module
        self.name = name or type(module).__name__
        self.dtype = dtype  # compute dtype; None = the manager's choice
        self.info: dict[str, Any] = dict(info or {})  # free-form facts (family, prediction type ...)
        self.patches: tuple[tuple[str, float, Patch], ...] = ()

    def clone(self) -> "ModelHandle":
        twin = ModelHandle(self.module, self.name, self.dtype, self.info)
        twin.patches = self.patches
        return twin

    def add_patches(self, patches: dict[str, Patch], strength: float = 1.0) -> "ModelHandle":
        """A new handle with these patches (weight key -> delta) added on top of this one's."""
        twin = self.clone()
        if strength != 0:
            twin.patches = self.patches + tuple((key, float(strength), p) for key, p in patches.items())
        return twin

    @property
    def size_bytes(self) -> int:
        return module_bytes(self.module)

    def __repr__(self) -> str:
        return f"<ModelHandle {self.name} patches={len(self.patches)}>"


class ModelInUseError(RuntimeError):
    """A use() of a module that an enclosing use() of the same thread holds with other patches or dtype."""


@dataclass
class _Resident:
    module: torch.nn.Module
    size: int
    in_use: int = 0
    holders: dict[int, int] = field(default_factory=dict)  # thread id -> uses it holds
    patched_by: tuple = ()
    backup: dict[str, torch.Tensor] = field(default_factory=dict)
    swapped: bool = False  # backup holds the original tensors themselves (patched copies swapped in)
    backup_bytes: int = 0  # device memory the patched copies take while swapped


class DeviceManager:
    def __init__(self, device: str | None = None, dtype: torch.dtype | None = None,
                 vram_budget: int | None = None, model_cache_bytes: int | None = None) -> None:
        self.device = pick_device(device)
        self.offload_device = torch.device("cpu")
        self.dtype = dtype or pick_dtype(self.device)
        self.dtype_given = dtype is not None  # then every handle without its own dtype gets this one
        if vram_budget is None and self.device.type == "cuda":
            total = torch.cuda.get_device_properties(self.device).total_memory
            vram_budget = int(total * 0.8)  # leave room for activations
        self.vram_budget = vram_budget  # None: unbounded (CPU)
        self._resident: OrderedDict[int, _Resident] = OrderedDict()  # by id(module), LRU first
        self._lock = threading.RLock()
        self._released = threading.Condition(self._lock)  # a module's last holder let go
        self._models: OrderedDict[Any, Any] = OrderedDict()
        self.model_cache_bytes = model_cache_bytes if model_cache_bytes is not None else 16 * 2**30

    # --- placement ----------------------------------------------------------------------------
    @contextmanager
    def use(self, handle: ModelHandle) -> Iterator[torch.nn.Module]:
        """The handle's module on the compute device, with the handle's patches applied; they are not
        changed by anyone until every holder has released the module."""
        dtype = self.dtype_for(handle)
        me = threading.get_ident()
        with self._released:
            while not self._may_use(handle, dtype):
                if self._resident[id(handle.module)].holders.get(me):
                    raise ModelInUseError(
                        f"{handle.name} is already in use here with other weight patches or dtype; a module "
                        "holds one set at a time, so release it before using another handle of it")
                self._released.wait()
            rec = self._load(handle.module, dtype)
            self._apply_patches(rec, handle.patches)
            rec.in_use += 1
            rec.holders[me] = rec.holders.get(me, 0) + 1
        try:
            yield rec.module
        finally:
            with self._released:
                rec.in_use -= 1
                rec.holders[me] -= 1
                if not rec.holders[me]:
                    del rec.holders[me]
                if rec.in_use == 0:
                    self._released.notify_all()

    def dtype_for(self, handle: ModelHandle) -> torch.dtype:
        """The compute dtype of a handle: its own, else the first of its model's safe dtypes that this
        CUDA device runs fast, else the manager's."""
        if handle.dtype is not None:
            return handle.dtype
        if not self.dtype_given and self.device.type == "cuda":
            for name in handle.info.get("inference_dtypes", ()):
                dtype = getattr(torch, name)
                if cuda_runs_fast(dtype, self.device):
                    return dtype
        return self.dtype

    def _may_use(self, handle: ModelHandle, dtype: torch.dtype) -> bool:
        """Free to use now: nobody holds the module, or its holders use the same patches and dtype."""
        rec = self._resident.get(id(handle.module))
        if rec is None or rec.in_use == 0:
            return True
        current = next(iter(rec.module.parameters()), None)
        return _same_patches(rec.patched_by, handle.patches) and (current is None or current.dtype == dtype)

    def resident_bytes(self) -> int:
        return sum(r.size + r.backup_bytes for r in self._resident.values())

    def is_resident(self, module: torch.nn.Module) -> bool:
        return id(module) in self._resident

    def _load(self, module: torch.nn.Module, dtype: torch.dtype) -> _Resident:
        key = id(module)
        rec = self._resident.get(key)
        if rec is not None:
            self._resident.move_to_end(key)
            if next(iter(module.parameters()), torch.empty(0, dtype=dtype)).dtype != dtype:
                self._apply_patches(rec, ())  # backups are in the old dtype: unpatch first
                module.to(dtype=dtype)
            return rec
        size = module_bytes(module)
        self._make_room(size)
        module.to(device=self.device, dtype=dtype)
        rec = _Resident(module, size)
        self._resident[key] = rec
        return rec

    def _make_room(self, size: int) -> None:
        if self.vram_budget is None:
            return
        for key in list(self._resident):
            if self.resident_bytes() + size <= self.vram_budget:
                break
            if self._resident[key].in_use == 0:
                self._offload(key)

    def _offload(self, key: int) -> None:
        rec = self._resident.pop(key)
        self._apply_patches(rec, ())  # the base weights go back to RAM, unpatched
        rec.module.to(self.offload_device)

    def free(self) -> int:
        """Offload every module not in use; returns the bytes freed from the device."""
        with self._lock:
            freed = 0
            for key in [k for k, r in self._resident.items() if r.in_use == 0]:
                freed += self._resident[key].size + self._resident[key].backup_bytes
                self._offload(key)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            return freed

    # --- weight patches -----------------------------------------------------------------------
    @torch.no_grad()
    def _apply_patches(self, rec: _Resident, patches: tuple) -> None:
        """Put `patches` on the module, from the base weights. Where the budget allows, the original
        tensors stay on the device as the backup and patched copies are swapped in, so restoring is
        free; otherwise the originals are copied to the offload device and the weights patched in place."""
        if _same_patches(rec.patched_by, patches):
            return
        params = dict(rec.module.named_parameters())
        params.update(dict(rec.module.named_buffers()))
        self._restore(rec, params)
        by_key: dict[str, list[tuple[float, Patch]]] = {}
        for key, strength, patch in patches:
            if key not in params:
                raise KeyError(f"patch for unknown weight {key!r} of {type(rec.module).__name__}")
            by_key.setdefault(key, []).append((strength, patch))
        extra = sum(params[k].numel() * params[k].element_size() for k in by_key)
        rec.swapped = self.vram_budget is None or self.resident_bytes() + extra <= self.vram_budget
        try:
            for key, items in by_key.items():
                # all patches of a weight are summed in float32 and rounded once; a callable patch sees
                # the weight with the patches before it applied (as LoRA stacks do in ComfyUI)
                weight = params[key]
                acc = weight.detach().to(torch.float32, copy=True)
                for strength, patch in items:
                    _add_patch(acc, strength, patch)
                if rec.swapped:
                    rec.backup[key] = weight.data
                    weight.data = acc.to(weight.dtype)
                    rec.backup_bytes += weight.numel() * weight.element_size()
                else:
                    rec.backup[key] = weight.detach().to(self.offload_device, copy=True)
                    weight.copy_(acc)
        except BaseException:
            self._restore(rec, params)  # never leave a half-patched module behind
            raise
        rec.patched_by = patches

    @torch.no_grad()
    def patched_weight(self, handle: ModelHandle, key: str) -> torch.Tensor:
        """One weight of a handle as its patches make it: float32, on the device its module is on.
        Read from the base weights whatever patches the shared module holds now, so a patch of one
        model may use another model's weights (model merging) without loading that model's patches."""
        with self._lock:
            params = dict(handle.module.named_parameters())
            params.update(dict(handle.module.named_buffers()))
            if key not in params:
                raise KeyError(f"{handle.name} has no weight {key!r}")
            rec = self._resident.get(id(handle.module))
            base = rec.backup[key] if rec is not None and key in rec.backup else params[key]
            acc = base.detach().to(device=params[key].device, dtype=torch.float32, copy=True)
            for patch_key, strength, patch in handle.patches:
                if patch_key == key:
                    _add_patch(acc, strength, patch)
            return acc

    @staticmethod
    def _restore(rec: _Resident, params: dict[str, torch.Tensor]) -> None:
        for key, original in rec.backup.items():  # back to the base, exactly
            if rec.swapped:
                params[key].data = original
            else:
                params[key].copy_(original.to(params[key].device))
        rec.backup.clear()
        rec.backup_bytes = 0
        rec.patched_by = ()

    # --- model cache (shared across workflows) ------------------------------------------------
    def load_cached(self, key: Any, loader: Callable[[], Any], size: Callable[[Any], int] | None = None) -> Any:
        """Load once per key (e.g. a file path + mtime) and share the result; LRU bounded in bytes."""
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key][0]
        value = loader()
        nbytes = size(value) if size else _value_bytes(value)
        with self._lock:
            self._models[key] = (value, nbytes)
            while len(self._models) > 1 and sum(n for _, n in self._models.values()) > self.model_cache_bytes:
                self._models.popitem(last=False)
        return value

    def clear_models(self) -> None:
        with self._lock:
            self.free()
            self._models.clear()

    def stats(self) -> dict:
        info = {"device": str(self.device), "dtype": str(self.dtype).replace("torch.", ""),
                "vram_budget": self.vram_budget, "resident_bytes": self.resident_bytes(),
                "resident_models": len(self._resident), "cached_models": len(self._models)}
        if self.device.type == "cuda":
            free, total = torch.cuda.mem_get_info(self.device)
            info.update(name=torch.cuda.get_device_name(self.device), vram_total=total, vram_free=free)
        return info


def _add_patch(acc: torch.Tensor, strength: float, patch: Patch) -> None:
    """acc += strength * delta, in place; a callable patch computes its delta from acc."""
    delta = patch(acc) if callable(patch) else patch
    acc.add_(delta.to(device=acc.device, dtype=torch.float32).reshape(acc.shape), alpha=strength)


def _same_patches(a: tuple, b: tuple) -> bool:
    """Same patch list? Patches compare by identity (tensors have no plain equality)."""
    return len(a) == len(b) and all(ka == kb and sa == sb and pa is pb for (ka, sa, pa), (kb, sb, pb) in zip(a, b))


def _value_bytes(value: Any) -> int:
    if isinstance(value, ModelHandle):
        return value.size_bytes
    if isinstance(value, torch.nn.Module):
        return module_bytes(value)
    if isinstance(value, (tuple, list)):
        return sum(_value_bytes(v) for v in value)
    if isinstance(value, dict):
        return sum(_value_bytes(v) for v in value.values())
    if hasattr(value, "__dict__"):
        return sum(_value_bytes(v) for v in vars(value).values() if isinstance(v, (ModelHandle, torch.nn.Module)))
    return 0


def run_in_chunks(ctx, handle: ModelHandle, x: torch.Tensor, chunk: int) -> torch.Tensor:
    """Forward a batch through a handle's module `chunk` items at a time, on its device and in its
    dtype, reporting progress per chunk; the result is float32 on the CPU."""
    outs = []
    with ctx.devices.use(handle) as module:
        param = next(module.parameters())
        for start in range(0, x.shape[0], chunk):
            with torch.inference_mode():
                y = module(x[start:start + chunk].to(param.device, param.dtype))
            outs.append(y.float().cpu())
            ctx.progress(min(start + chunk, x.shape[0]), x.shape[0])
    return torch.cat(outs)
