"""Text encoding: our CLIP forward pass vs transformers', ComfyUI's weighting formula, clip skip,
long prompts, textual inversion, SD2 / SDXL encoders."""
from __future__ import annotations

import pytest
import torch

from nodes.diffusion.checkpoint.modules import clip_core
from nodes.diffusion import clip as K
from nodes.diffusion.models import ClipModel
from tests.tiny_models import tiny_components


@pytest.fixture(scope="module")
def parts():
    return {family: tiny_components(family, seed=5) for family in ("sd1", "sd2", "sdxl")}


def _ids(chunks):
    return [[t for t, _ in c] for c in chunks]


def test_forward_matches_transformers(parts):
    for te in (parts["sd1"]["text_encoder"], parts["sd2"]["text_encoder"]):
        chunks = _ids(K.tokenize_with_weights("a red circle on a blue background"))
        ids = torch.tensor(chunks)
        with torch.no_grad():
            ref = te(ids, output_hidden_states=True)
            z, pooled = K.run_text_encoder(te, chunks)
            assert torch.allclose(z, ref.last_hidden_state, atol=1e-5)
            hidden, _ = K.run_text_encoder(te, chunks, layer_idx=-2, layer_norm_hidden=False)
            assert torch.allclose(hidden, ref.hidden_states[-2], atol=1e-5)
            normed, _ = K.run_text_encoder(te, chunks, layer_idx=-2, layer_norm_hidden=True)
            assert torch.allclose(normed, clip_core(te).final_layer_norm(ref.hidden_states[-2]), atol=1e-5)
            last, _ = K.run_text_encoder(te, chunks, layer_idx=-1)  # "hidden -1" + layer norm = last
            assert torch.allclose(last, z, atol=1e-6)
            expected_pooled = ref.text_embeds if hasattr(ref, "text_embeds") and ref.text_embeds is not None \
                else ref.pooler_output
            assert torch.allclose(pooled, expected_pooled, atol=1e-5)


def test_unweighted_prompt_skips_the_empty_pass(parts):
    te = parts["sd1"]["text_encoder"]
    opts = K.TokenizerOptions()
    chunks = K.tokenize_with_weights("a red circle", opts)
    cond, pooled = K.encode_weighted(te, chunks, opts)
    z, p = K.run_text_encoder(te, _ids(chunks))
    assert cond.shape == (1, 77, 32) and torch.equal(cond, z)
    assert torch.equal(pooled, p[:1])


def test_weighting_formula_is_comfyuis(parts):
    te = parts["sd1"]["text_encoder"]
    opts = K.TokenizerOptions()
    weighted = K.tokenize_with_weights("a (red:1.5) circle", opts)
    cond, pooled = K.encode_weighted(te, weighted, opts)
    with torch.no_grad():
        z, p = K.run_text_encoder(te, _ids(weighted))
        empty, _ = K.run_text_encoder(te, _ids([K.empty_chunk(opts)]))
    expected = z[0].clone()
    red = [i for i, (t, w) in enumerate(weighted[0]) if w != 1.0]
    assert red == [2]
    expected[2] = (z[0, 2] - empty[0, 2]) * 1.5 + empty[0, 2]
    assert torch.allclose(cond[0], expected, atol=1e-6)
    assert torch.equal(cond[0, :2], z[0, :2]) and torch.equal(cond[0, 3:], z[0, 3:])
    assert torch.allclose(pooled, p[:1])  # pooled output is the unweighted first chunk's
    # weight 1.0 written explicitly changes nothing
    same, _ = K.encode_weighted(te, K.tokenize_with_weights("a (red:1.0) circle", opts), opts)
    plain, _ = K.encode_weighted(te, K.tokenize_with_weights("a red circle", opts), opts)
    assert torch.equal(same, plain)


def test_long_prompt_concatenates_chunks(parts):
    model = ClipModel([parts["sd1"]["text_encoder"]], "sd1")
    cond, pooled = model.encode(" ".join(["red circle"] * 50))
    assert cond.shape == (1, 154, 32) and pooled.shape == (1, 32)
    first, _ = model.encode(" ".join(["red circle"] * 37) + " red")  # exactly the first 75 tokens
    assert torch.allclose(cond[:, :77], first, atol=1e-6)


def test_clip_skip(parts):
    model = ClipModel([parts["sd1"]["text_encoder"]], "sd1")
    default, _ = model.encode("a red circle")
    minus_one, _ = model.encode("a red circle", layer_idx=-1)
    minus_two, pooled_two = model.encode("a red circle", layer_idx=-2)
    _, pooled_default = model.encode("a red circle")
    assert torch.allclose(default, minus_one, atol=1e-6)
    assert not torch.allclose(default, minus_two, atol=1e-3)
    assert torch.equal(pooled_default, pooled_two)  # pooled always comes from the final layer
    assert torch.allclose(model.encode("a red circle", layer_idx=-99)[0], default)  # out of range: last


def test_sd2_defaults_to_penultimate_normed(parts):
    te = parts["sd2"]["text_encoder"]
    model = ClipModel([te], "sd2")
    cond, pooled = model.encode("a red circle")
    chunks = K.tokenize_with_weights("a red circle", K.TokenizerOptions(pad_token=0))
    assert _ids(chunks)[0][4:6] == [K.EOS, 0]  # open_clip padding
    z, p = K.run_text_encoder(te, _ids(chunks), layer_idx=-2, layer_norm_hidden=True)
    assert torch.allclose(cond, z, atol=1e-6)
    assert pooled.shape == (1, 48)  # projected
    last, _ = model.encode("a red circle", layer_idx=-1)
    assert not torch.allclose(last, cond, atol=1e-3)


def test_sdxl_concatenates_both_encoders(parts):
    te_l, te_g = parts["sdxl"]["text_encoder"], parts["sdxl"]["text_encoder_2"]
    model = ClipModel([te_l, te_g], "sdxl")
    cond, pooled = model.encode("a (red:1.2) circle")
    assert cond.shape == (1, 77, 32 + 48) and pooled.shape == (1, 48)
    opts_g = K.TokenizerOptions(pad_token=0, embedding_width=48, embedding_key="clip_g")
    g, g_pooled = K.encode_weighted(te_g, K.tokenize_with_weights("a (red:1.2) circle", opts_g), opts_g,
                                    layer_idx=-2, layer_norm_hidden=False)
    assert torch.allclose(cond[..., 32:], g, atol=1e-6)
    assert torch.allclose(pooled, g_pooled, atol=1e-6)
    with torch.no_grad():
        ref = te_g(torch.tensor(_ids(K.tokenize_with_weights("a (red:1.2) circle", opts_g))))
    assert torch.allclose(pooled, ref.text_embeds, atol=1e-5)  # the final layer's projected EOS state


def test_textual_inversion_vectors_enter_the_encoder(parts, tmp_path):
    from safetensors.torch import save_file
    te = parts["sd1"]["text_encoder"]
    table = clip_core(te).embeddings.token_embedding.weight
    # an embedding equal to the token "red" encodes exactly like the word
    save_file({"emb_params": table[736:737].detach().clone()}, str(tmp_path / "redish.safetensors"))
    model = ClipModel([te], "sd1")
    with_word, _ = model.encode("a red circle")
    with_embedding, _ = model.encode("a embedding:redish circle", embedding_dirs=[tmp_path])
    assert torch.allclose(with_word, with_embedding, atol=1e-6)
    # ... and a different vector changes the conditioning
    save_file({"emb_params": torch.randn(2, 32)}, str(tmp_path / "odd.safetensors"))
    other, _ = model.encode("a embedding:odd circle", embedding_dirs=[tmp_path])
    assert not torch.allclose(other[:, :4], with_word[:, :4], atol=1e-3)
