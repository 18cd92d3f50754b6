"""Conditioning nodes: CLIPTextEncode, CLIPSetLastLayer, Combine, Average, SetArea, ZeroOut."""
from __future__ import annotations

import pytest
import torch

from nodegraph.devices import ModelHandle
from nodes.diffusion.checkpoint.modules import clip_core
from nodes.diffusion.models import ClipModel
from tests.tiny_models import tiny_components
from tests.diffusion.nodecall import run


@pytest.fixture(scope="module")
def tiny_clip():
    parts = tiny_components("sd1", seed=7)
    return ModelHandle(ClipModel([parts["text_encoder"]], "sd1"), "tiny", info={"family": "sd1", "layer_idx": None})




def cond(value: float, tokens: int = 77, width: int = 4, pooled: float | None = 1.0):
    extras = {} if pooled is None else {"pooled_output": torch.full((1, 3), pooled)}
    return [[torch.full((1, tokens, width), value), extras]]


def test_clip_text_encode(env, tiny_clip):
    out = run(env, "CLIPTextEncode", text="a red circle", clip=tiny_clip)
    [(c, extras)] = out
    assert c.shape == (1, 77, 32) and c.dtype == torch.float32
    assert extras["pooled_output"].shape == (1, 32)
    expected, _ = tiny_clip.module.encode("a red circle")
    assert torch.allclose(c, expected)


def test_embeddings_folder_is_used(env, tiny_clip, tmp_path):
    from safetensors.torch import save_file
    (tmp_path / "models" / "embeddings").mkdir(parents=True)
    table = clip_core(tiny_clip.module.encoders[0]).embeddings.token_embedding.weight
    save_file({"emb_params": table[736:737].detach().clone()}, str(tmp_path / "models" / "embeddings" / "red.safetensors"))
    via_embedding = run(env, "CLIPTextEncode", text="a embedding:red circle", clip=tiny_clip)[0][0]
    via_word = run(env, "CLIPTextEncode", text="a red circle", clip=tiny_clip)[0][0]
    assert torch.allclose(via_embedding, via_word, atol=1e-6)


def test_clip_set_last_layer(env, tiny_clip):
    skipped = run(env, "CLIPSetLastLayer", clip=tiny_clip, stop_at_clip_layer=-2)
    assert skipped.info["layer_idx"] == -2 and tiny_clip.info["layer_idx"] is None  # the input handle is untouched
    assert skipped.module is tiny_clip.module  # same weights, no copy
    a = run(env, "CLIPTextEncode", text="a red circle", clip=tiny_clip)[0][0]
    b = run(env, "CLIPTextEncode", text="a red circle", clip=skipped)[0][0]
    last = run(env, "CLIPTextEncode", text="a red circle",
               clip=run(env, "CLIPSetLastLayer", clip=tiny_clip, stop_at_clip_layer=-1))[0][0]
    assert not torch.allclose(a, b, atol=1e-3) and torch.allclose(a, last, atol=1e-6)


def test_combine(env):
    out = run(env, "ConditioningCombine", conditioning_1=cond(1.0), conditioning_2=cond(2.0) + cond(3.0))
    assert [c[0][0, 0, 0].item() for c in out] == [1.0, 2.0, 3.0]


def test_average(env):
    out = run(env, "ConditioningAverage", conditioning_to=cond(1.0, pooled=1.0), conditioning_from=cond(3.0, pooled=5.0),
              conditioning_to_strength=0.25)
    [(c, extras)] = out
    assert torch.allclose(c, torch.full((1, 77, 4), 0.25 * 1 + 0.75 * 3))
    assert torch.allclose(extras["pooled_output"], torch.full((1, 3), 0.25 * 1 + 0.75 * 5))
    # a shorter "from" prompt is zero-padded, a longer one cut to the "to" length
    [(c, _)] = run(env, "ConditioningAverage", conditioning_to=cond(1.0, tokens=154), conditioning_from=cond(3.0),
                   conditioning_to_strength=0.5)
    assert c.shape == (1, 154, 4) and c[0, 0, 0] == 2.0 and c[0, 100, 0] == 0.5
    [(c, extras)] = run(env, "ConditioningAverage", conditioning_to=cond(1.0, pooled=None),
                        conditioning_from=cond(3.0, tokens=154, pooled=2.0), conditioning_to_strength=1.0)
    assert c.shape == (1, 77, 4) and torch.equal(c, torch.ones(1, 77, 4))
    assert torch.equal(extras["pooled_output"], torch.full((1, 3), 2.0))  # "to" had none: taken from "from"


def test_set_area(env):
    source = cond(1.0)
    [(c, extras)] = run(env, "ConditioningSetArea", conditioning=source, width=256, height=128, x=64, y=32, strength=0.8)
    assert extras["area"] == (16, 32, 4, 8) and extras["strength"] == 0.8 and extras["set_area_to_bounds"] is False
    assert "area" not in source[0][1]  # the input list is not mutated
    assert c is source[0][0]


def test_zero_out(env):
    [(c, extras)] = run(env, "ConditioningZeroOut", conditioning=cond(1.5, pooled=2.0))
    assert torch.equal(c, torch.zeros(1, 77, 4)) and torch.equal(extras["pooled_output"], torch.zeros(1, 3))
