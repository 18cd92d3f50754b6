"""How the device manager applies LoRA patches: originals kept as the backup and patched copies
swapped in when the budget allows (free restore), copied out to the offload device otherwise; both
restore the base bit for bit, also after a failing patch or a dtype change."""
import pytest
import torch

from nodegraph.devices import DeviceManager, ModelHandle
from nodes.diffusion.lora_patches import LowRank


def module():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Conv2d(4, 8, 3))


def lora_patches(m) -> dict:
    g = torch.Generator().manual_seed(1)
    return {"0.weight": LowRank(torch.randn(32, 2, generator=g), torch.randn(2, 16, generator=g), None, 0.5),
            "1.weight": LowRank(torch.randn(8, 2, 1, 1, generator=g), torch.randn(2, 4, 3, 3, generator=g), None, 1.0)}


def expected(m, patches, strength):
    return {k: m.state_dict()[k] + strength * p(m.state_dict()[k]) for k, p in patches.items()}


@pytest.mark.parametrize("budget", [None, 1])  # None: room for patched copies; 1 byte: none, copy out
def test_patch_and_restore_bit_exactly_in_both_modes(budget):
    m = module()
    base = {k: v.clone() for k, v in m.state_dict().items()}
    pointers = {k: v.data_ptr() for k, v in m.state_dict().items()}
    devices = DeviceManager(device="cpu", vram_budget=budget)
    plain = ModelHandle(m)
    patched = plain.add_patches(lora_patches(m), strength=0.8)
    want = expected(m, lora_patches(m), 0.8)
    with devices.use(patched) as mm:
        for k, v in want.items():
            torch.testing.assert_close(mm.state_dict()[k], v)
    rec = devices._resident[id(m)]
    assert rec.swapped == (budget is None)
    assert devices.resident_bytes() == rec.size + (sum(v.numel() * 4 for v in want.values()) if budget is None else 0)
    with devices.use(plain) as mm:
        assert all(torch.equal(mm.state_dict()[k], base[k]) for k in base)
        if budget is None:  # the very same tensors are back: nothing was copied
            assert all(mm.state_dict()[k].data_ptr() == pointers[k] for k in base)
    assert devices.resident_bytes() == rec.size


def test_a_failing_patch_leaves_the_base_in_place():
    m = module()
    base = {k: v.clone() for k, v in m.state_dict().items()}
    devices = DeviceManager(device="cpu")

    def broken(weight):
        raise RuntimeError("bad patch")

    handle = ModelHandle(m).add_patches({"0.weight": lora_patches(m)["0.weight"], "1.weight": broken})
    with pytest.raises(RuntimeError, match="bad patch"):
        with devices.use(handle):
            pass
    with devices.use(ModelHandle(m)) as mm:
        assert all(torch.equal(mm.state_dict()[k], base[k]) for k in base)


def test_changing_dtype_while_patched_unpatches_first():
    m = module()
    base = {k: v.clone() for k, v in m.state_dict().items()}
    devices = DeviceManager(device="cpu")
    with devices.use(ModelHandle(m).add_patches(lora_patches(m))):
        pass
    bf16 = ModelHandle(m, dtype=torch.bfloat16)
    with devices.use(bf16) as mm:
        assert all(torch.equal(mm.state_dict()[k], base[k].bfloat16()) for k in base)
