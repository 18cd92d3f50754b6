import torch


class TestMaskFromImage:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "channel": (["red", "green", "blue"], {"default": "green"}),
                             "threshold": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01})}}

    RETURN_TYPES = ("MASK",)
    FUNCTION = "run"
    CATEGORY = "test_pack/mask"

    def run(self, image, channel, threshold):
        index = ["red", "green", "blue"].index(channel)
        return ((image[..., index] > threshold).float(),)


class TestMaskBBox:
    """A pack's own socket type: BBOX flows only between this pack's nodes."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mask": ("MASK",)}}

    RETURN_TYPES = ("BBOX",)
    RETURN_NAMES = ("bbox",)
    FUNCTION = "run"
    CATEGORY = "test_pack/mask"

    def run(self, mask):
        ys, xs = torch.nonzero(mask[0] > 0.5, as_tuple=True)
        return ((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1),)


class TestCropToBBox:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "bbox": ("BBOX",)}}

    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "run"
    CATEGORY = "test_pack/mask"

    def run(self, image, bbox):
        x0, y0, x1, y1 = bbox
        crop = image[:, y0:y1, x0:x1, :]
        return (crop, torch.ones(crop.shape[:3]))


MASK_MAPPINGS = {"TestMaskFromImage": TestMaskFromImage, "TestMaskBBox": TestMaskBBox, "TestCropToBBox": TestCropToBBox}
MASK_NAMES = {"TestMaskBBox": "Mask Bounding Box (test)"}
