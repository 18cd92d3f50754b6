"""Test pack (a single file): a lazy switch, as ComfyUI's lazy evaluation docs write it."""


class TestLazySwitch:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"select_a": ("BOOLEAN", {"default": True}),
                             "a": ("IMAGE", {"lazy": True}), "b": ("IMAGE", {"lazy": True})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "switch"
    CATEGORY = "test_pack/logic"

    def check_lazy_status(self, select_a, a=None, b=None):
        needed = "a" if select_a else "b"
        return [needed] if (a if select_a else b) is None else []

    def switch(self, select_a, a=None, b=None):
        return (a if select_a else b,)


class TestCountingImage:
    """Not deterministic on purpose: IS_CHANGED returns NaN, so it always runs (ComfyUI's idiom)."""

    runs = 0

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "make"
    CATEGORY = "test_pack/logic"

    @classmethod
    def IS_CHANGED(cls, value):
        return float("nan")

    def make(self, value):
        import torch

        TestCountingImage.runs += 1
        return (torch.full((1, 8, 8, 3), value),)


NODE_CLASS_MAPPINGS = {"TestLazySwitch": TestLazySwitch, "TestCountingImage": TestCountingImage}
