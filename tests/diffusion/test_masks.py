"""Mask nodes and ImagePadForOutpaint against ComfyUI's definitions (nodes.py, comfy_extras/nodes_mask.py)."""
import numpy as np
import pytest
import torch

from tests.diffusion.nodecall import run


def schema_inputs(env, name):
    return [(i.name, i.default, i.min, i.max, i.step) for i in env.registry.get(name).inputs]


# --- ImagePadForOutpaint ---------------------------------------------------------------------------

def reference_outpaint_mask(h, w, left, top, right, bottom, feathering):
    """ComfyUI's loop, written out: distance to each padded side, quadratic rise below `feathering`."""
    t = np.zeros((h, w), np.float32)
    if feathering > 0 and feathering * 2 < h and feathering * 2 < w:
        for i in range(h):
            for j in range(w):
                d = min(i if top else h, h - i if bottom else h, j if left else w, w - j if right else w)
                if d < feathering:
                    t[i, j] = ((feathering - d) / feathering) ** 2
    mask = np.ones((h + top + bottom, w + left + right), np.float32)
    mask[top:top + h, left:left + w] = t
    return mask


def test_pad_for_outpaint_declaration(env):
    assert [i.name for i in env.registry.get("ImagePadForOutpaint").inputs][0] == "image"
    assert schema_inputs(env, "ImagePadForOutpaint")[1:] == [
        ("left", 0, 0, 16384, 8), ("top", 0, 0, 16384, 8), ("right", 0, 0, 16384, 8), ("bottom", 0, 0, 16384, 8),
        ("feathering", 40, 0, 16384, 1)]
    assert [o.name for o in env.registry.get("ImagePadForOutpaint").outputs] == ["IMAGE", "MASK"]


@pytest.mark.parametrize("sides", [(8, 0, 16, 0), (0, 8, 0, 24), (16, 16, 16, 16), (0, 0, 0, 0), (8, 0, 0, 0)])
@pytest.mark.parametrize("feathering", [0, 1, 5, 11, 12])
def test_pad_for_outpaint_matches_comfyui(env, sides, feathering):
    left, top, right, bottom = sides
    image = torch.rand(2, 24, 30, 3)
    padded, mask = run(env, "ImagePadForOutpaint", image=image, left=left, top=top, right=right, bottom=bottom,
                       feathering=feathering)
    assert padded.shape == (2, 24 + top + bottom, 30 + left + right, 3) and padded.dtype == torch.float32
    assert torch.equal(padded[:, top:top + 24, left:left + 30], image)
    border = torch.ones(padded.shape[1:3], dtype=torch.bool)
    border[top:top + 24, left:left + 30] = False
    assert padded[:, border].eq(0.5).all()  # ComfyUI's mid-grey canvas
    assert mask.shape == (1, 24 + top + bottom, 30 + left + right) and mask.dtype == torch.float32
    assert torch.equal(mask[0], torch.from_numpy(reference_outpaint_mask(24, 30, left, top, right, bottom, feathering)))


def test_pad_for_outpaint_feathers_only_towards_padded_sides(env):
    _, mask = run(env, "ImagePadForOutpaint", image=torch.zeros(1, 64, 64, 3), left=0, top=0, right=32, bottom=0,
                  feathering=10)
    inside = mask[0, :, :64]
    assert inside[:, :55].eq(0).all()  # 10 or more pixels from the padded (right) side: kept
    # columns 54..63 lie 10..1 pixels from the right edge (ComfyUI counts the last column as 1)
    assert torch.allclose(inside[:, 54:], torch.tensor([((10 - d) / 10) ** 2 for d in range(10, 0, -1)]).expand(64, 10))
    assert mask[0, :, 64:].eq(1).all()


def test_pad_for_outpaint_keeps_an_alpha_channel_and_refuses_absurd_sizes(env):
    padded, _ = run(env, "ImagePadForOutpaint", image=torch.rand(1, 8, 8, 4), left=8, top=0, right=0, bottom=0,
                    feathering=0)
    assert padded.shape == (1, 8, 16, 4) and padded[..., :8, :].eq(0.5).all()
    with pytest.raises(ValueError, match="too big"):
        run(env, "ImagePadForOutpaint", image=torch.zeros(4096, 8, 8, 3), left=16384, top=16384, right=16384,
            bottom=16384, feathering=0)


# --- FeatherMask, GrowMask --------------------------------------------------------------------------

def comfy_feather(mask, left, top, right, bottom):
    """ComfyUI's FeatherMask loop as written in comfy_extras/nodes_mask.py: the right and bottom ramps
    index -x, and -0 is the first column / row."""
    out = mask.reshape(-1, *mask.shape[-2:]).clone()
    left, right = min(left, out.shape[-1]), min(right, out.shape[-1])
    top, bottom = min(top, out.shape[-2]), min(bottom, out.shape[-2])
    for x in range(left):
        out[:, :, x] *= (x + 1.0) / left
    for x in range(right):
        out[:, :, -x] *= (x + 1) / right
    for y in range(top):
        out[:, y, :] *= (y + 1) / top
    for y in range(bottom):
        out[:, -y, :] *= (y + 1) / bottom
    return out


@pytest.mark.parametrize("sides", [(4, 0, 2, 20), (8, 8, 8, 8), (0, 3, 0, 0), (1, 1, 1, 1), (30, 0, 30, 0)])
def test_feather_mask_ramps_as_comfyui(env, sides):
    left, top, right, bottom = sides
    mask = torch.rand(2, 10, 12)
    out = run(env, "FeatherMask", mask=mask, left=left, top=top, right=right, bottom=bottom)
    assert out.shape == (2, 10, 12) and torch.equal(out, comfy_feather(mask, left, top, right, bottom))


def test_feather_mask_ramp_values(env):
    out = run(env, "FeatherMask", mask=torch.ones(1, 10, 12), left=4, top=0, right=2, bottom=0)
    row = out[0, 0]
    # left: (k + 1) / 4 from column 0; right: column -0 = 0 gets 1/2 too, column -1 (the last) 2/2
    assert torch.allclose(row[:4], torch.tensor([0.25 * 0.5, 0.5, 0.75, 1.0]))
    assert torch.equal(row[4:], torch.ones(8))
    two_d = run(env, "FeatherMask", mask=torch.ones(5, 5), left=1, top=1, right=1, bottom=1)
    assert torch.equal(two_d, torch.ones(1, 5, 5))  # a ramp of 1 pixel multiplies by 1/1
    mask = torch.ones(1, 4, 4)
    run(env, "FeatherMask", mask=mask, left=2, top=2, right=2, bottom=2)
    assert torch.equal(mask, torch.ones(1, 4, 4))  # the input is not changed


@pytest.mark.parametrize("tapered", [True, False])
@pytest.mark.parametrize("expand", [-3, -1, 0, 1, 4])
def test_grow_mask_equals_scipy_grey_morphology(env, tapered, expand):
    import scipy.ndimage
    torch.manual_seed(0)
    mask = (torch.rand(2, 20, 17) > 0.7).float() * torch.rand(2, 20, 17)
    mask[:, 5:12, 4:10] = 1.0
    out = run(env, "GrowMask", mask=mask, expand=expand, tapered_corners=tapered)
    c = 0 if tapered else 1
    footprint = np.array([[c, 1, c], [1, 1, 1], [c, 1, c]])
    for k in range(2):
        ref = mask[k].numpy()
        for _ in range(abs(expand)):
            op = scipy.ndimage.grey_erosion if expand < 0 else scipy.ndimage.grey_dilation
            ref = op(ref, footprint=footprint)
        assert np.allclose(out[k].numpy(), ref), (k, expand, tapered)


# --- MaskComposite, SolidMask, InvertMask -----------------------------------------------------------

def test_mask_composite_operations(env):
    dest = torch.tensor([[[0.2, 0.6, 0.9, 0.4]]])
    src = torch.tensor([[[0.7, 0.2, 0.6]]])  # pasted over columns 1..3 (rounded: dest 1 1 0, src 1 0 1)
    expect = {"multiply": [0.2, 0.42, 0.18, 0.24], "add": [0.2, 1.0, 1.0, 1.0], "subtract": [0.2, 0.0, 0.7, 0.0],
              "and": [0.2, 1.0, 0.0, 0.0], "or": [0.2, 1.0, 1.0, 1.0], "xor": [0.2, 0.0, 1.0, 1.0]}
    for operation, values in expect.items():
        out = run(env, "MaskComposite", destination=dest, source=src, x=1, y=0, operation=operation)
        assert torch.allclose(out, torch.tensor([[values]])), operation
    # out of range values outside the pasted region are clamped too, as ComfyUI clamps the whole result
    out = run(env, "MaskComposite", destination=torch.full((1, 2, 2), 3.0), source=torch.zeros(1, 1, 1), x=0, y=0,
              operation="add")
    assert out.eq(1).all()
    # a source past the edge is cut; one source mask is used for every destination mask
    out = run(env, "MaskComposite", destination=torch.zeros(3, 4, 4), source=torch.ones(1, 8, 8), x=2, y=3,
              operation="add")
    assert out.shape == (3, 4, 4) and out.sum() == 3 * 2 and out[:, 3, 2:].eq(1).all()


def test_solid_and_invert_mask(env):
    solid = run(env, "SolidMask", value=0.25, width=5, height=3)
    assert solid.shape == (1, 3, 5) and solid.dtype == torch.float32 and solid.eq(0.25).all()
    assert run(env, "InvertMask", mask=solid).eq(0.75).all()


# --- ImageCompositeMasked ---------------------------------------------------------------------------

def test_image_composite_masked(env):
    dest = torch.zeros(2, 8, 8, 3)
    src = torch.ones(1, 4, 4, 3)
    plain = run(env, "ImageCompositeMasked", destination=dest, source=src, x=6, y=2, resize_source=False)
    assert plain.shape == (2, 8, 8, 3) and plain.sum() == 2 * 4 * 2 * 3  # cut at the right edge, both images
    assert plain[:, 2:6, 6:].eq(1).all() and dest.eq(0).all()
    mask = torch.zeros(4, 4)
    mask[:2, :2] = 1.0
    masked = run(env, "ImageCompositeMasked", destination=dest, source=src, x=0, y=0, resize_source=False, mask=mask)
    assert masked[:, :2, :2].eq(1).all() and masked[:, 2:, :].eq(0).all() and masked[:, :, 2:].eq(0).all()
    small = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # resized to the source's 4x4 with bilinear, as ComfyUI
    masked = run(env, "ImageCompositeMasked", destination=dest, source=src, x=4, y=4, resize_source=False, mask=small)
    expected = torch.nn.functional.interpolate(small[None, None], size=(4, 4), mode="bilinear")[0, 0]
    assert torch.allclose(masked[1, 4:, 4:, 0], expected) and masked[:, :4].eq(0).all()
    soft = run(env, "ImageCompositeMasked", destination=dest, source=src, x=0, y=0, resize_source=True,
               mask=torch.full((1, 8, 8), 0.25))
    assert torch.allclose(soft, torch.full((2, 8, 8, 3), 0.25))
    rgba = run(env, "ImageCompositeMasked", destination=torch.zeros(1, 4, 4, 4), source=torch.ones(1, 4, 4, 3),
               x=0, y=0, resize_source=False)
    assert rgba.eq(1).all()  # a source without alpha is opaque
    rgb = run(env, "ImageCompositeMasked", destination=torch.zeros(1, 4, 4, 3), source=torch.ones(1, 4, 4, 4),
              x=1, y=1, resize_source=False)
    assert rgb.shape == (1, 4, 4, 3) and rgb[:, 1:, 1:].eq(1).all()
    nothing = run(env, "ImageCompositeMasked", destination=dest, source=src, x=8, y=0, resize_source=False)
    assert torch.equal(nothing, dest)
