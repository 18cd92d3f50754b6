import torch

from nodegraph.devices import DeviceManager, ModelHandle


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
