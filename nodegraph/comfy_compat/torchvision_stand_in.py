"""A minimal torchvision for ComfyUI packs, used only when the real one cannot be imported.

Many image packs import torchvision at module level for a couple of conversions (ToTensor,
ToPILImage, resize, normalize). nodegraph does not depend on torchvision (its PyPI wheels do not
match every torch build), so while a ComfyUI pack is imported this stand-in answers for
`torchvision`, `torchvision.transforms(.v2)(.functional)`, `torchvision.ops` (masks_to_boxes, box_area, box_iou, nms, batched_nms) and an empty
`torchvision.io`; it is removed from sys.modules right
after, so libraries that probe for torchvision later still see it missing. What it implements
behaves as torchvision does; anything else raises an error saying the stand-in lacks it.
"""
from __future__ import annotations

import enum
import importlib.machinery
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .surface import Miss, UnsupportedComfyFeature
from . import runtime

STAND_IN_MARK = "__nodegraph_stand_in__"


class InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


_PIL_FILTERS = {InterpolationMode.NEAREST: Image.NEAREST, InterpolationMode.NEAREST_EXACT: Image.NEAREST,
                InterpolationMode.BILINEAR: Image.BILINEAR, InterpolationMode.BICUBIC: Image.BICUBIC,
                InterpolationMode.BOX: Image.BOX, InterpolationMode.HAMMING: Image.HAMMING,
                InterpolationMode.LANCZOS: Image.LANCZOS}


def to_tensor(pic) -> torch.Tensor:
    """PIL image or HWC uint8 array -> float CHW in 0..1."""
    array = np.array(pic)
    if array.ndim == 2:
        array = array[:, :, None]
    tensor = torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()
    return tensor.float().div(255) if tensor.dtype == torch.uint8 else tensor.float()


def pil_to_tensor(pic) -> torch.Tensor:
    array = np.array(pic)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def to_pil_image(pic, mode=None) -> Image.Image:
    """CHW tensor (float 0..1 or uint8) or HWC array -> PIL image."""
    if isinstance(pic, torch.Tensor):
        if pic.ndim == 2:
            pic = pic.unsqueeze(0)
        if pic.is_floating_point():
            pic = (pic * 255).clamp(0, 255).byte()  # torchvision: mul(255).byte() of clamped data
        array = pic.permute(1, 2, 0).cpu().numpy()
    else:
        array = np.asarray(pic)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(array, mode=mode)


def normalize(tensor, mean, std, inplace=False):
    mean_t = torch.as_tensor(mean, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
    out = tensor if inplace else tensor.clone()
    return out.sub_(mean_t).div_(std_t)


def _size_hw(size, h: int, w: int) -> tuple[int, int]:
    if isinstance(size, int) or (isinstance(size, (list, tuple)) and len(size) == 1):
        short = size if isinstance(size, int) else size[0]
        if h <= w:
            return short, int(short * w / h)
        return int(short * h / w), short
    return int(size[0]), int(size[1])


def resize(img, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True):
    if isinstance(interpolation, int):
        interpolation = InterpolationMode.BILINEAR
    if isinstance(img, Image.Image):
        h, w = _size_hw(size, img.height, img.width)
        return img.resize((w, h), _PIL_FILTERS[interpolation])
    h, w = _size_hw(size, img.shape[-2], img.shape[-1])
    mode = interpolation.value
    if mode not in ("nearest", "nearest-exact", "bilinear", "bicubic"):
        raise _missing_feature(f"transforms.functional.resize(interpolation={mode})")
    x = img.unsqueeze(0) if img.ndim == 3 else img
    kwargs = {"antialias": antialias, "align_corners": False} if mode in ("bilinear", "bicubic") else {}
    out = F.interpolate(x.float(), size=(h, w), mode=mode, **kwargs).to(img.dtype)
    return out[0] if img.ndim == 3 else out


def crop(img, top: int, left: int, height: int, width: int):
    """torchvision's crop: the box at (top, left) of size (height, width); parts outside the picture are 0."""
    if isinstance(img, Image.Image):
        return img.crop((left, top, left + width, top + height))
    h, w = img.shape[-2:]
    pad_top, pad_left = max(0, -top), max(0, -left)
    pad_bottom, pad_right = max(0, top + height - h), max(0, left + width - w)
    if pad_top or pad_left or pad_bottom or pad_right:
        img = F.pad(img, (pad_left, pad_right, pad_top, pad_bottom))
        top, left = top + pad_top, left + pad_left
    return img[..., top:top + height, left:left + width]


def center_crop(img, output_size):
    """torchvision's center_crop: (h, w) (an int: a square) from the middle, offsets rounded half to even."""
    if isinstance(output_size, int) or (isinstance(output_size, (list, tuple)) and len(output_size) == 1):
        size = output_size if isinstance(output_size, int) else output_size[0]
        output_size = (size, size)
    ch, cw = int(output_size[0]), int(output_size[1])
    h, w = (img.height, img.width) if isinstance(img, Image.Image) else img.shape[-2:]
    return crop(img, int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0)), ch, cw)


def gaussian_blur(img, kernel_size, sigma=None):
    """torchvision's: a separable Gaussian over the last two dims with reflect padding;
    sigma defaults to 0.3 * ((k - 1) * 0.5 - 1) + 0.8 per axis."""
    ks = [kernel_size, kernel_size] if isinstance(kernel_size, int) else list(kernel_size)
    if sigma is None:
        sigmas = [0.3 * ((k - 1) * 0.5 - 1) + 0.8 for k in ks]
    else:
        sigmas = [float(sigma)] * 2 if isinstance(sigma, (int, float)) else [float(s) for s in sigma]
    x = img.float() if not img.is_floating_point() else img
    shape = x.shape
    x = x.reshape(-1, 1, shape[-2], shape[-1])
    for axis, (k, s) in enumerate(zip(ks, sigmas)):  # torchvision: kernel_size is (x, y)
        half = (k - 1) * 0.5
        weights = torch.exp(-0.5 * (torch.linspace(-half, half, k, dtype=x.dtype, device=x.device) / s) ** 2)
        weights = weights / weights.sum()
        if axis == 0:
            x = F.conv2d(F.pad(x, [k // 2, k // 2, 0, 0], mode="reflect"), weights.view(1, 1, 1, k))
        else:
            x = F.conv2d(F.pad(x, [0, 0, k // 2, k // 2], mode="reflect"), weights.view(1, 1, k, 1))
    out = x.reshape(shape)
    return out if img.is_floating_point() else out.round().to(img.dtype)


def rgb_to_grayscale(img, num_output_channels: int = 1):
    """torchvision's: ITU-R 601-2 luma (0.2989 R + 0.587 G + 0.114 B) over dim -3, repeated to
    num_output_channels; integer images are rounded back to their dtype."""
    if img.shape[-3] != 3:
        raise TypeError(f"rgb_to_grayscale expects 3 channels in dim -3, got {img.shape[-3]}")
    r, g, b = img.float().unbind(dim=-3)
    luma = (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(-3)
    if not img.is_floating_point():
        luma = luma.round()
    luma = luma.to(img.dtype)
    return luma.expand(img.shape) if num_output_channels == 3 else luma


def masks_to_boxes(masks):
    """torchvision.ops': the (x1, y1, x2, y2) box around each [N, H, W] mask's non-zero pixels, as floats."""
    if masks.numel() == 0:
        return torch.zeros((0, 4), device=masks.device, dtype=torch.float)
    boxes = torch.zeros((masks.shape[0], 4), device=masks.device, dtype=torch.float)
    for index, mask in enumerate(masks):
        y, x = torch.where(mask != 0)
        boxes[index] = torch.stack([x.min(), y.min(), x.max(), y.max()]).float()
    return boxes


def box_area(boxes):
    """torchvision.ops': the area of each (x1, y1, x2, y2) box."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1, boxes2):
    """torchvision.ops': the [N, M] intersection over union of two sets of boxes."""
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    return inter / (box_area(boxes1)[:, None] + box_area(boxes2)[None, :] - inter)


def nms(boxes, scores, iou_threshold: float):
    """torchvision.ops': greedy non-maximum suppression; the kept indices by decreasing score."""
    order = scores.argsort(descending=True)
    iou = box_iou(boxes, boxes)
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for rank, index in enumerate(order.tolist()):
        if suppressed[rank]:
            continue
        keep.append(index)
        suppressed |= iou[index, order] > iou_threshold
    return torch.tensor(keep, dtype=torch.int64, device=boxes.device)


def batched_nms(boxes, scores, idxs, iou_threshold: float):
    """torchvision.ops': nms within each category of idxs (boxes of different categories never
    suppress each other: each category is shifted apart by more than the largest coordinate)."""
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    offsets = idxs.to(boxes) * (boxes.max() + 1)
    return nms(boxes + offsets[:, None], scores, iou_threshold)


class Compose:
    def __init__(self, transforms) -> None:
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


class ToTensor:
    def __call__(self, pic):
        return to_tensor(pic)


class ToPILImage:
    def __init__(self, mode=None) -> None:
        self.mode = mode

    def __call__(self, pic):
        return to_pil_image(pic, self.mode)


class Resize:
    def __init__(self, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True) -> None:
        self.size, self.interpolation, self.antialias = size, interpolation, antialias

    def __call__(self, img):
        return resize(img, self.size, self.interpolation, antialias=self.antialias)


class CenterCrop:
    def __init__(self, size) -> None:
        self.size = size

    def __call__(self, img):
        return center_crop(img, self.size)


class Normalize:
    def __init__(self, mean, std, inplace=False) -> None:
        self.mean, self.std, self.inplace = mean, std, inplace

    def __call__(self, tensor):
        return normalize(tensor, self.mean, self.std, self.inplace)


def _missing_feature(name: str) -> UnsupportedComfyFeature:
    miss = Miss(runtime.calling_pack(3), "torchvision", name)
    return UnsupportedComfyFeature(miss.message().replace(
        "nodegraph's ComfyUI compatibility layer does not provide",
        "torchvision is not installed and nodegraph's minimal stand-in does not provide") +
        "; install a torchvision that matches your torch to use this node")


def _module(name: str, attrs: dict) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    setattr(module, STAND_IN_MARK, True)
    # importlib.util.find_spec("torchvision") raises ValueError on a module without a spec (libraries
    # such as transformers probe that way while a pack imports)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)

    def __getattr__(attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise _missing_feature(f"{name.partition('.')[2] or name}.{attr}")

    module.__getattr__ = __getattr__
    return module


def build() -> dict[str, types.ModuleType]:
    functional = {"to_tensor": to_tensor, "pil_to_tensor": pil_to_tensor, "to_pil_image": to_pil_image,
                  "normalize": normalize, "resize": resize, "gaussian_blur": gaussian_blur,
                  "rgb_to_grayscale": rgb_to_grayscale, "crop": crop, "center_crop": center_crop,
                  "InterpolationMode": InterpolationMode}
    classes = {"Compose": Compose, "ToTensor": ToTensor, "ToPILImage": ToPILImage, "Resize": Resize,
               "CenterCrop": CenterCrop, "Normalize": Normalize, "InterpolationMode": InterpolationMode}
    f1 = _module("torchvision.transforms.functional", functional)
    f2 = _module("torchvision.transforms.v2.functional", dict(functional))
    v2 = _module("torchvision.transforms.v2", {**classes, "functional": f2})
    transforms = _module("torchvision.transforms", {**classes, "functional": f1, "v2": v2})
    # torchvision.io: nothing in it, but libraries that see "torchvision" import it at module level
    # (transformers' video_utils, which BLIP/CLIP processors pull in); its names fail when used
    io = _module("torchvision.io", {})
    box_ops = {"box_area": box_area, "box_iou": box_iou, "nms": nms, "batched_nms": batched_nms}
    boxes = _module("torchvision.ops.boxes", dict(box_ops))
    ops = _module("torchvision.ops", {"masks_to_boxes": masks_to_boxes, "boxes": boxes, **box_ops})
    root = _module("torchvision", {"transforms": transforms, "io": io, "ops": ops,
                                   "__version__": "0.0+nodegraph-stand-in"})
    return {"torchvision": root, "torchvision.transforms": transforms, "torchvision.transforms.functional": f1,
            "torchvision.transforms.v2": v2, "torchvision.transforms.v2.functional": f2, "torchvision.io": io,
            "torchvision.ops": ops, "torchvision.ops.boxes": boxes}


def needed() -> bool:
    """True when the real torchvision cannot be imported."""
    if "torchvision" in sys.modules and not getattr(sys.modules["torchvision"], STAND_IN_MARK, False):
        return False
    try:
        import importlib.util

        if importlib.util.find_spec("torchvision") is None:
            return True
        import torchvision  # noqa: F401
        return False
    except Exception:  # installed but broken (e.g. built for another torch)
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            sys.modules.pop(name, None)
        return True
