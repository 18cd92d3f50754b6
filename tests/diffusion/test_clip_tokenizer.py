"""CLIP tokenizer ids against two independent implementations, prompt-weight parsing, chunking."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from nodes.diffusion import clip as K

PROMPTS = [
    "a photo of a cat",
    "A red CIRCLE on a Blue background.",
    "masterpiece, best quality, (detailed:1.2), ((sharp)), [blurry], \\(literal\\)",
    "it's they're we've I'm you'll he'd",
    "1234567 3.14 $5,000 100% #hashtag @user",
    "naïve café — 東京 🐱 emoji ünïcödé Ωμέγα привет",
    "&amp; &lt;tag&gt; html entities",
    "   lots   of\n\nwhite\tspace   ",
    "",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "photorealistic portrait of an elderly fisherman, weathered skin, dramatic rim lighting, 85mm, f/1.8, "
    "bokeh, film grain, kodak portra 400, trending on artstation, highly detailed, intricate, 8k uhd, "
    "sharp focus, volumetric fog, golden hour, cinematic composition, rule of thirds, depth of field",
    "embedding:my_style, a dog",
    "a<b>c {curly} [square] |pipe| ~tilde~ `tick` \"quotes\"",
]


@pytest.fixture(scope="module")
def tokenizer():
    return K.get_tokenizer()


@pytest.fixture(scope="module")
def open_clip_reference():
    """open_clip's SimpleTokenizer (OpenAI's reference code), loaded by path: open_clip's package
    __init__ imports torchvision, the tokenizer module itself does not."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None:
        pytest.skip("open-clip-torch not installed")
    path = Path(spec.submodule_search_locations[0]) / "tokenizer.py"
    module_spec = importlib.util.spec_from_file_location("_open_clip_tokenizer_reference", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.SimpleTokenizer()


@pytest.mark.parametrize("prompt", PROMPTS)
def test_ids_match_open_clip_simple_tokenizer(tokenizer, open_clip_reference, prompt):
    assert tokenizer.encode(prompt) == open_clip_reference.encode(prompt)
    # the full 77-token form, as open_clip.tokenize gives it (truncation keeps EOS last, pad 0)
    assert tokenizer(prompt, pad=0) == open_clip_reference([prompt])[0].tolist()


def test_ids_match_transformers_clip_tokenizer(tokenizer):
    """transformers' CLIPTokenizer (the tokenizers-library BPE) built from the same merges."""
    from transformers import CLIPTokenizer
    merges = sorted(tokenizer.ranks, key=tokenizer.ranks.get)
    hf = CLIPTokenizer(vocab=dict(tokenizer.encoder), merges=[tuple(m) for m in merges])
    for prompt in PROMPTS:
        if "&" in prompt:  # the fast tokenizer does not html-unescape (the reference does)
            continue
        assert hf(prompt)["input_ids"] == [K.BOS, *tokenizer.encode(prompt), K.EOS], prompt


def test_known_ids_and_decode(tokenizer):
    assert tokenizer.vocab_size == 49408
    assert (tokenizer.bos, tokenizer.eos) == (49406, 49407)
    assert tokenizer.encode("a photo of a cat") == [320, 1125, 539, 320, 2368]
    assert tokenizer.decode(tokenizer.encode("a red circle")).strip() == "a red circle"


@pytest.mark.parametrize("text, expected", [
    ("plain words", [("plain words", 1.0)]),
    ("a (red) cat", [("a ", 1.0), ("red", 1.1), (" cat", 1.0)]),
    ("a ((red)) cat", [("a ", 1.0), ("red", pytest.approx(1.21)), (" cat", 1.0)]),
    ("(red:1.5) cat", [("red", 1.5), (" cat", 1.0)]),
    ("(a (b:0.5) c:2)", [("a ", 2.0), ("b", 0.5), (" c", 2.0)]),
    ("(a (b) c:2)", [("a ", 2.0), ("b", pytest.approx(2.2)), (" c", 2.0)]),
    ("(ratio 16:9x)", [("ratio 16:9x", pytest.approx(1.1))]),  # not a number after the colon: kept as text
    ("(ratio 16:9)", [("ratio 16", 9.0)]),  # ... but a number is a weight, as in ComfyUI
    ("(time: 10:30:2)", [("time: 10:30", 2.0)]),  # the last colon counts
    ("\\(not weighted\\)", [("(not weighted)", 1.0)]),
    ("(escaped \\) inside:1.3)", [("escaped ) inside", 1.3)]),
    ("[square] stays", [("[square] stays", 1.0)]),  # ComfyUI: brackets are plain text
    ("unbalanced ) then (x)", [("unbalanced ) then (x)", 1.0)]),  # ComfyUI: depth went negative, rest is text
    ("open (never closed", [("open ", 1.0), ("(never closed", 1.0)]),
])
def test_parse_weights_comfyui(text, expected):
    assert K.parse_weights(text) == expected


def test_parse_weights_square_brackets_option():
    assert K.parse_weights("a [b] c", square_brackets=True) == [("a ", 1.0), ("b", pytest.approx(1 / 1.1)), (" c", 1.0)]
    assert K.parse_weights("[[b]]", square_brackets=True) == [("b", pytest.approx(1 / 1.21))]
    assert K.parse_weights("([b]:2)", square_brackets=True) == [("b", pytest.approx(2 / 1.1))]
    assert K.parse_weights("\\[b\\]", square_brackets=True) == [("[b]", 1.0)]


def _ids(chunk):
    return [t for t, _ in chunk]


def test_short_prompt_is_one_padded_chunk(tokenizer):
    chunks = K.tokenize_with_weights("a red circle")
    assert len(chunks) == 1 and len(chunks[0]) == 77
    assert _ids(chunks[0])[:5] == [49406, 320, 736, 7117, 49407]
    assert set(_ids(chunks[0])[5:]) == {49407}  # SD1 pads with EOS
    sd2 = K.tokenize_with_weights("a red circle", K.TokenizerOptions(pad_token=0))
    assert set(_ids(sd2[0])[5:]) == {0}  # open_clip encoders pad with 0


def test_weights_follow_their_tokens():
    chunk = K.tokenize_with_weights("a (red:1.5) circle, (very big)")[0]
    pairs = [(t, w) for t, w in chunk if t not in (K.BOS, K.EOS)]
    words = {t: w for t, w in pairs}
    assert words[736] == 1.5  # red
    assert words[7117] == 1.0 and words[267] == 1.0  # circle ,
    assert words[1070] == pytest.approx(1.1) and words[1205] == pytest.approx(1.1)  # very big
    assert chunk[0] == (K.BOS, 1.0) and chunk[-1][1] == 1.0


def test_long_prompt_chunks_of_75_tokens():
    prompt = " ".join(["cat"] * 180)
    chunks = K.tokenize_with_weights(prompt)
    assert [len(c) for c in chunks] == [77, 77, 77]
    for c in chunks:
        assert c[0][0] == K.BOS
    assert _ids(chunks[0])[1:76] == [2368] * 75 and _ids(chunks[0])[76] == K.EOS
    assert _ids(chunks[1])[1:76] == [2368] * 75
    assert _ids(chunks[2])[1:31] == [2368] * 30 and _ids(chunks[2])[31] == K.EOS
    assert sum(t == 2368 for c in chunks for t in _ids(c)) == 180


def test_short_word_is_not_split_but_long_word_is(tokenizer):
    word = "supercalifragilisticexpialidocious"  # many tokens
    n = len(tokenizer.encode(word))
    assert n >= K.MAX_WORD_LENGTH
    # 74 one-token words leave room for one token: a 2-token word moves whole to the next chunk
    two = "xyzzy"
    assert len(tokenizer.encode(two)) == 2
    chunks = K.tokenize_with_weights(" ".join(["cat"] * 74) + " " + two)
    assert len(chunks) == 2
    assert _ids(chunks[0])[75] == K.EOS and _ids(chunks[0])[76] == K.EOS  # EOS then padding
    assert _ids(chunks[1])[1:3] == tokenizer.encode(two)
    # a long word is cut at the boundary instead
    chunks = K.tokenize_with_weights(" ".join(["cat"] * 74) + " " + word)
    pieces = _ids(chunks[0])[75:76] + _ids(chunks[1])[1:n]
    assert pieces == tokenizer.encode(word)


def test_embeddings_from_files(tmp_path):
    from safetensors.torch import save_file
    vectors = torch.randn(3, 32)
    save_file({"emb_params": vectors}, str(tmp_path / "my_style.safetensors"))
    torch.save({"string_to_param": {"*": torch.randn(2, 32)}, "name": "old"}, tmp_path / "a1111.pt")
    (tmp_path / "sub").mkdir()
    save_file({"clip_l": torch.randn(1, 32), "clip_g": torch.randn(1, 48)}, str(tmp_path / "sub" / "xl.safetensors"))
    opts = K.TokenizerOptions(embedding_width=32, embedding_key="clip_l")
    chunk = K.tokenize_with_weights("a embedding:my_style, dog (embedding:a1111:1.2) embedding:sub/xl", opts, [tmp_path])[0]
    tensors = [(t, w) for t, w in chunk if isinstance(t, torch.Tensor)]
    assert len(tensors) == 3 + 2 + 1
    assert torch.equal(tensors[0][0], vectors[0]) and torch.equal(tensors[2][0], vectors[2])
    assert [w for _, w in tensors[3:5]] == [1.2, 1.2]
    assert 267 in [t for t in _ids(chunk) if isinstance(t, int)]  # the comma after "embedding:my_style," is still text
    # unknown embeddings and wrong widths are skipped (with a warning), the rest of the prompt stays
    chunk = K.tokenize_with_weights("embedding:nope cat", opts, [tmp_path])[0]
    assert _ids(chunk)[:3] == [K.BOS, 2368, K.EOS]
    wide = K.TokenizerOptions(embedding_width=64)
    chunk = K.tokenize_with_weights("embedding:my_style cat", wide, [tmp_path])[0]
    assert not any(isinstance(t, torch.Tensor) for t in _ids(chunk))
    # no traversal out of the embeddings folders
    assert K.find_embedding("../outside", [tmp_path / "sub"]) is None


def test_default_world_training_ids_equal_the_prompt_tokenizer():
    """The embedded default model is trained on default_world.token_ids: prompts typed in a workflow
    must reach the text encoder as the very same ids."""
    world = pytest.importorskip("training.default_world")
    captions = world.sample_scenes(seed=0, count=64).captions + ["a red circle", "a small blue square at the top left"]
    for caption in captions:
        chunk = K.tokenize_with_weights(caption)[0]
        assert _ids(chunk) == world.token_ids(caption), caption
