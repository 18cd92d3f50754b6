"""Test pack with two broken declarations beside a good node: only the broken ones are skipped."""
import comfy.model_management


class TestGood:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("INT", {"default": 3})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "test_pack/broken"

    def run(self, x):
        comfy.model_management.throw_exception_if_processing_interrupted()
        return (x * 2,)


class TestBadInput:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": 42}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, x):
        return (x,)


class TestNoFunction:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "does_not_exist"


class TestUsesMissing:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("INT", {"default": 1})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "test_pack/broken"

    def run(self, x):
        return (comfy.model_management.a_name_comfyui_never_had(x),)


NODE_CLASS_MAPPINGS = {"TestGood": TestGood, "TestBadInput": TestBadInput, "TestNoFunction": TestNoFunction,
                       "TestUsesMissing": TestUsesMissing}
