import threading
import time

import pytest
import torch

from nodegraph.devices import DeviceManager, ModelHandle, ModelInUseError


def linear(n=16):
    torch.manual_seed(n)
    return torch.nn.Linear(n, n, bias=False)


def test_budget_offloads_least_recently_used():
    a, b, c = linear(), linear(), linear()  # 1 KiB each in fp32
    size = a.weight.numel() * 4
    manager = DeviceManager(device="cpu", vram_budget=2 * size)
    for m in (a, b):
        with manager.use(ModelHandle(m)):
            pass
    assert manager.is_resident(a) and manager.is_resident(b)
    with manager.use(ModelHandle(a)):  # a becomes most recent
        pass
    with manager.use(ModelHandle(c)):
        assert manager.is_resident(c)
    assert manager.is_resident(a) and not manager.is_resident(b)
    assert manager.resident_bytes() <= 2 * size


def test_models_in_use_are_never_offloaded():
    a, b = linear(), linear()
    size = a.weight.numel() * 4
    manager = DeviceManager(device="cpu", vram_budget=size)
    with manager.use(ModelHandle(a)):
        with manager.use(ModelHandle(b)):
            assert manager.is_resident(a) and manager.is_resident(b)  # over budget rather than pull a in use
    assert manager.free() == 2 * size
    assert manager.resident_bytes() == 0


def test_patches_apply_per_handle_and_restore_exactly():
    module = linear()
    base = module.weight.detach().clone()
    manager = DeviceManager(device="cpu")
    plain = ModelHandle(module)
    delta = torch.randn_like(base)
    patched = plain.add_patches({"weight": delta}, strength=0.5)
    double = patched.add_patches({"weight": lambda w: torch.ones_like(w)}, strength=2.0)
    assert patched.module is module and plain.patches == ()
    with manager.use(patched) as m:
        assert torch.allclose(m.weight, base + 0.5 * delta)
    with manager.use(double) as m:
        assert torch.allclose(m.weight, base + 0.5 * delta + 2.0)
    with manager.use(plain) as m:
        assert torch.equal(m.weight, base)  # bit-exact: restored from the backup
    assert plain.add_patches({"weight": delta}, strength=0.0).patches == ()


def test_load_cached_shares_models():
    manager = DeviceManager(device="cpu")
    calls = []
    first = manager.load_cached(("ckpt", 1), lambda: calls.append(1) or ModelHandle(linear()))
    again = manager.load_cached(("ckpt", 1), lambda: calls.append(1) or ModelHandle(linear()))
    assert first is again and len(calls) == 1


def test_device_and_dtype_choice():
    manager = DeviceManager(device="cpu")
    assert manager.device.type == "cpu" and manager.dtype == torch.float32
    assert manager.stats()["device"] == "cpu"


# --- holders: nobody re-patches a module another use() still holds (issue 14) ------------------------

def counting_patch(calls, value=1.0):
    def patch(weight):
        calls.append(1)
        return torch.full_like(weight, value)
    return patch


def test_nested_uses_of_one_patch_set_apply_it_once():
    module = linear()
    base = module.weight.detach().clone()
    manager = DeviceManager(device="cpu")
    calls = []
    patched = ModelHandle(module).add_patches({"weight": counting_patch(calls)})
    with manager.use(patched) as outer:
        with manager.use(patched.clone()) as inner:  # a twin with the same patches joins in
            assert inner is outer and torch.allclose(inner.weight, base + 1.0)
        assert torch.allclose(outer.weight, base + 1.0)  # the inner release restored nothing
    with manager.use(patched):
        pass
    assert calls == [1]  # applied once, and still on for the next use of the same handle


def test_a_nested_use_with_other_patches_is_refused_and_leaves_the_holder_alone():
    module = linear()
    base = module.weight.detach().clone()
    manager = DeviceManager(device="cpu")
    plain = ModelHandle(module)
    patched = plain.add_patches({"weight": torch.ones_like(base)})
    with manager.use(patched) as m:
        with pytest.raises(ModelInUseError, match="already in use"):
            with manager.use(plain):
                pass
        with pytest.raises(ModelInUseError):
            with manager.use(ModelHandle(module, dtype=torch.float64)):  # nor another dtype
                pass
        assert torch.allclose(m.weight, base + 1.0) and m.weight.dtype == torch.float32
    with manager.use(plain) as m:  # once released, the other handle gets the base exactly
        assert torch.equal(m.weight, base)


def test_a_concurrent_use_with_other_patches_waits_for_the_last_holder():
    module = linear()
    base = module.weight.detach().clone()
    manager = DeviceManager(device="cpu")
    plain = ModelHandle(module)
    patched = plain.add_patches({"weight": torch.ones_like(base)})
    holding, release, seen = threading.Event(), threading.Event(), []

    def hold():
        with manager.use(patched) as m:
            with manager.use(patched):  # nested holders: the module is free only after both let go
                holding.set()
                release.wait(10)
                seen.append(("holder", torch.allclose(m.weight, base + 1.0)))

    def other():
        holding.wait(10)
        with manager.use(plain) as m:
            seen.append(("other", torch.equal(m.weight, base)))

    threads = [threading.Thread(target=hold), threading.Thread(target=other)]
    for t in threads:
        t.start()
    holding.wait(10)
    time.sleep(0.2)  # the other thread is waiting now; it must not have touched the weights
    assert seen == [] and torch.allclose(module.weight, base + 1.0)
    release.set()
    for t in threads:
        t.join(10)
    assert seen == [("holder", True), ("other", True)]


# --- compute dtype per model (issue 15): ComfyUI's supported_inference_dtypes order ---------------------

def cuda_manager(monkeypatch, fast=(torch.float16, torch.bfloat16, torch.float32), dtype=None):
    """A manager that believes it drives a CUDA device running `fast` dtypes fast (no GPU is touched)."""
    import nodegraph.devices as devices
    monkeypatch.setattr(devices, "pick_dtype", lambda device: torch.bfloat16)
    monkeypatch.setattr(devices, "cuda_runs_fast", lambda dt, device: dt in fast)
    return DeviceManager(device="cuda", dtype=dtype, vram_budget=1 << 30)


def test_cuda_picks_the_first_fast_dtype_the_model_lists(monkeypatch):
    sd15 = ModelHandle(linear(), info={"inference_dtypes": ("float16", "bfloat16", "float32")})
    sd2 = ModelHandle(linear(), info={"inference_dtypes": ("bfloat16", "float32")})
    other = ModelHandle(linear())
    manager = cuda_manager(monkeypatch)
    assert manager.dtype_for(sd15) == torch.float16  # ComfyUI runs SD1.5 / SDXL U-Nets in fp16
    assert manager.dtype_for(sd2) == torch.bfloat16
    assert manager.dtype_for(other) == torch.bfloat16  # no list: the manager's dtype
    own = sd15.clone()
    own.dtype = torch.float32
    assert manager.dtype_for(own) == torch.float32
    # a GPU without fast fp16 (before Volta) takes the next one listed
    assert cuda_manager(monkeypatch, fast=(torch.bfloat16, torch.float32)).dtype_for(sd15) == torch.bfloat16
    # a dtype given to the manager (the user's choice) wins over the model's list
    assert cuda_manager(monkeypatch, dtype=torch.bfloat16).dtype_for(sd15) == torch.bfloat16


def test_the_model_list_is_ignored_off_cuda():
    sd15 = ModelHandle(linear(), info={"inference_dtypes": ("float16", "bfloat16", "float32")})
    manager = DeviceManager(device="cpu")
    assert manager.dtype_for(sd15) == torch.float32
    with manager.use(sd15) as module:
        assert module.weight.dtype == torch.float32
