"""ControlNet preprocessors (nodes/image/preprocessors.py: Canny, ScribbleThreshold), ThresholdMask,
and the ComfyUI-compatible ImageToMask / MaskToImage they are used with."""
from __future__ import annotations

import torch

from nodes.image.preprocessors import canny_edges
from tests.diffusion.nodecall import run


def square_image(size=64, lo=16, hi=48, color=(0.95, 0.9, 0.3), background=(0.1, 0.1, 0.4)):
    image = torch.tensor(background).expand(1, size, size, 3).clone()
    image[:, lo:hi, lo:hi] = torch.tensor(color)
    return image


def test_canny_finds_the_edges_of_a_square(env):
    edges = run(env, "Canny", image=square_image(), low_threshold=0.4, high_threshold=0.8)
    assert edges.shape == (1, 64, 64, 3) and set(edges.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(edges[..., 0], edges[..., 2])  # white on black, grey
    e = edges[0, ..., 0]
    ys, xs = torch.nonzero(e, as_tuple=True)
    # every edge pixel lies on the square's outline (within one pixel of the boundary at 16 / 48)
    near_x = ((xs - 16).abs() <= 1) | ((xs - 47).abs() <= 1)
    near_y = ((ys - 16).abs() <= 1) | ((ys - 47).abs() <= 1)
    assert bool((near_x | near_y).all())
    assert bool(((ys >= 14) & (ys <= 49) & (xs >= 14) & (xs <= 49)).all())
    # and all four sides are found, continuous along their middle part
    for side in (e[20:44, 15:18], e[20:44, 46:49], e[15:18, 20:44].t(), e[46:49, 20:44].t()):
        assert bool((side.amax(dim=1) == 1).all())
    # inside and far outside: nothing
    assert e[20:44, 20:44].sum() == 0 and e[:10].sum() == 0


def test_canny_thresholds_filter_weak_edges(env):
    faint = square_image(color=(0.2, 0.2, 0.5))  # a low-contrast square
    strong = square_image()
    assert run(env, "Canny", image=faint, low_threshold=0.4, high_threshold=0.8).sum() == 0
    assert run(env, "Canny", image=faint, low_threshold=0.05, high_threshold=0.1).sum() > 0
    assert run(env, "Canny", image=strong, low_threshold=0.4, high_threshold=0.8).sum() > 0


def test_canny_equals_kornia_the_library_comfyui_calls():
    import kornia  # a test dependency (pyproject [test])
    torch.manual_seed(0)
    for trial in range(12):
        if trial < 4:
            image = torch.rand(2, 3, 24, 30)
        else:
            image = torch.zeros(2, 3, 40, 40)
            y, x = torch.randint(4, 20, (2,)).tolist()
            image[:, :, y:y + 14, x:x + 11] = torch.rand(3, 1, 1)
            if trial % 2:
                image = torch.nn.functional.avg_pool2d(image, 3, 1, 1)
        lo, hi = sorted((0.01 + 0.98 * torch.rand(2)).tolist())
        assert torch.equal(canny_edges(image, lo, hi), kornia.filters.canny(image, lo, hi)[1])


def test_canny_schema_and_threshold_order(env):
    spec = env.registry.get("Canny")
    by = {i["name"]: i for i in spec.schema(env)["inputs"]}
    assert list(by) == ["image", "low_threshold", "high_threshold"]
    assert (by["low_threshold"]["default"], by["low_threshold"]["min"], by["low_threshold"]["max"]) == (0.4, 0.01, 0.99)
    assert (by["high_threshold"]["default"], by["high_threshold"]["step"]) == (0.8, 0.01)
    assert "low_threshold" in spec.cls.validate_inputs(low_threshold=0.9, high_threshold=0.5)
    assert spec.cls.validate_inputs(low_threshold=0.4, high_threshold=0.8) is None


def test_threshold_mask_is_comfyuis(env):
    mask = torch.tensor([[[0.2, 0.5, 0.51, 0.9]]])
    assert run(env, "ThresholdMask", mask=mask, value=0.5).tolist() == [[[0.0, 0.0, 1.0, 1.0]]]
    by = {i["name"]: i for i in env.registry.get("ThresholdMask").schema(env)["inputs"]}
    assert list(by) == ["mask", "value"] and (by["value"]["default"], by["value"]["max"]) == (0.5, 1.0)


def test_scribble_threshold_makes_white_strokes_on_black(env):
    drawing = torch.ones(1, 8, 8, 3)  # a pencil line on paper
    drawing[:, 3, 1:7] = 0.1
    scribble = run(env, "ScribbleThreshold", image=drawing, threshold=0.5, strokes="dark on light")
    assert scribble.shape == (1, 8, 8, 3)
    assert scribble[0, 3, 1:7].eq(1).all() and scribble.sum() == 6 * 3
    inverse = run(env, "ScribbleThreshold", image=1 - drawing, threshold=0.5, strokes="light on dark")
    assert torch.equal(inverse, scribble)


def test_image_to_mask_and_back_match_comfyui(env):
    image = torch.rand(2, 5, 6, 3)
    mask = run(env, "ImageToMask", image=image, channel="green")
    assert torch.equal(mask, image[..., 1])
    back = run(env, "MaskToImage", mask=mask)
    assert back.shape == (2, 5, 6, 3) and torch.equal(back[..., 2], image[..., 1])
    # a single [H, W] mask becomes a batch of one, as ComfyUI's reshape(-1, 1, H, W) does
    assert run(env, "MaskToImage", mask=mask[0]).shape == (1, 5, 6, 3)
