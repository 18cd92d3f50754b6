"""CLIP text side: BPE tokenizer, ComfyUI prompt weighting, 77-token chunking, embeddings, encoding.

- `ClipTokenizer`: OpenAI CLIP's byte-level BPE (same ids as open_clip's SimpleTokenizer and
  transformers' CLIPTokenizer), vocab from `bpe_simple_vocab_16e6.txt.gz`.
- `parse_weights(text)`: ComfyUI's syntax: `(word:1.2)`, `(word)` = x1.1, nesting multiplies,
  `\\(` `\\)` are literal parentheses; optionally (A1111) `[word]` = /1.1 with `\\[` `\\]` escapes.
- `tokenize_with_weights(...)`: ComfyUI's chunking: each chunk is BOS + 75 tokens + EOS (+ pad),
  a short word that would straddle a chunk boundary moves to the next chunk whole,
  `embedding:name` pulls textual-inversion vectors from the embeddings folders.
- `encode_weighted(...)`: z = (z - z_empty) * w + z_empty per token (ComfyUI's formula, z_empty
  being the encoding of an empty prompt), chunks concatenated along the token axis.
"""
from __future__ import annotations

import gzip
import html
import importlib.util
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import regex
import torch

log = logging.getLogger(__name__)

BOS, EOS = 49406, 49407
CHUNK_LENGTH = 77  # tokens per chunk, BOS and EOS included
MAX_WORD_LENGTH = 8  # words of fewer tokens are never split across chunks
EMBEDDING_PREFIX = "embedding:"
VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"

Token = int | torch.Tensor  # a vocabulary id, or a textual-inversion vector
WeightedChunk = list[tuple[Token, float]]


# =============================================================================================
# BPE tokenizer
# =============================================================================================

def find_vocab_file() -> Path:
    """The CLIP BPE merges file: $NODEGRAPH_CLIP_VOCAB, a copy next to the configs, or the one inside
    the open-clip-torch package (located without importing open_clip, whose imports are heavy)."""
    candidates = []
    if os.environ.get("NODEGRAPH_CLIP_VOCAB"):
        candidates.append(Path(os.environ["NODEGRAPH_CLIP_VOCAB"]))
    candidates.append(Path(__file__).parent / "configs" / VOCAB_FILE)
    spec = importlib.util.find_spec("open_clip")
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / VOCAB_FILE for p in spec.submodule_search_locations]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"CLIP vocabulary {VOCAB_FILE} not found; searched {', '.join(map(str, candidates))}. "
                            "Install it with: pip install --no-deps open-clip-torch")


@lru_cache()
def _bytes_to_unicode() -> dict[int, str]:
    """Reversible byte -> printable unicode char map of GPT-2 / CLIP BPE."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def _clean(text: str) -> str:
    try:
        import ftfy
        text = ftfy.fix_text(text)
    except ImportError:  # ftfy only repairs mojibake; plain text tokenizes the same without it
        pass
    text = html.unescape(html.unescape(text)).strip()
    return " ".join(text.split()).lower()


class ClipTokenizer:
    """OpenAI CLIP BPE: `encode(text)` gives the ids without BOS/EOS."""

    _PATTERN = regex.compile(r"""<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                             regex.IGNORECASE)

    def __init__(self, vocab_file: str | Path | None = None) -> None:
        path = Path(vocab_file) if vocab_file else find_vocab_file()
        lines = gzip.open(path).read().decode("utf-8").split("\n")
        merges = [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1]]
        byte_chars = list(_bytes_to_unicode().values())
        vocab = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.encoder: dict[str, int] = {tok: i for i, tok in enumerate(vocab)}
        self.decoder = {i: tok for tok, i in self.encoder.items()}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.byte_encoder = _bytes_to_unicode()
        self.byte_decoder = {v: k for k, v in self.byte_encoder.items()}
        self.bos, self.eos = self.encoder["<|startoftext|>"], self.encoder["<|endoftext|>"]
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def _bpe(self, token: str) -> list[str]:
        word = list(token[:-1]) + [token[-1] + "</w>"]
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, 1 << 30))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == best[0] and word[i + 1] == best[1]:
                    merged.append(best[0] + best[1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        return word

    def _encode_piece(self, piece: str) -> list[int]:
        ids = self._cache.get(piece)
        if ids is None:
            if piece in ("<start_of_text>", "<end_of_text>"):
                ids = [self.bos if piece.startswith("<start") else self.eos]
            else:
                mapped = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
                ids = [self.encoder[t] for t in self._bpe(mapped)]
            if len(self._cache) < 100_000:
                self._cache[piece] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in self._PATTERN.findall(_clean(text)):
            ids.extend(self._encode_piece(piece))
        return ids

    def __call__(self, text: str, length: int | None = CHUNK_LENGTH, pad: int = EOS) -> list[int]:
        """BOS + ids + EOS, truncated/padded to `length` as open_clip's tokenize does (pad=0 there)."""
        ids = [self.bos, *self.encode(text), self.eos]
        if length is None:
            return ids
        if len(ids) > length:
            ids = ids[:length]
            ids[-1] = self.eos
        return ids + [pad] * (length - len(ids))

    def decode(self, ids: Iterable[int]) -> str:
        text = "".join(self.decoder[i] for i in ids)
        return bytearray(self.byte_decoder[c] for c in text).decode("utf-8", errors="replace").replace("</w>", " ")


@lru_cache(maxsize=2)
def get_tokenizer(vocab_file: str | None = None) -> ClipTokenizer:
    return ClipTokenizer(vocab_file)


# =============================================================================================
# Prompt weighting (ComfyUI syntax)
# =============================================================================================

# ComfyUI weights only parentheses; square brackets are plain text there. A1111's "[word]" = /1.1
# is available (set square_brackets=True) but off by default so ComfyUI prompts give ComfyUI's images.
SQUARE_BRACKETS_DOWNWEIGHT = False

_PAREN_ESCAPES = (("\\)", "\0\1"), ("\\(", "\0\2"))
_BRACKET_ESCAPES = (("\\]", "\0\3"), ("\\[", "\0\4"))


def _escape(text: str, escapes) -> str:
    for raw, code in escapes:
        text = text.replace(raw, code)
    return text


def _unescape(text: str, escapes) -> str:
    for raw, code in escapes:
        text = text.replace(code, raw[1])
    return text


def _split_groups(text: str, openers: str, closers: str) -> list[str]:
    """Top-level pieces: plain runs and bracket groups. One depth counter, as ComfyUI's
    parse_parentheses (an unmatched closer makes the depth negative and the rest stays text)."""
    pieces: list[str] = []
    current, depth = "", 0
    for ch in text:
        if ch in openers:
            if depth == 0:
                if current:
                    pieces.append(current)
                current = ch
            else:
                current += ch
            depth += 1
        elif ch in closers:
            depth -= 1
            if depth == 0:
                pieces.append(current + ch)
                current = ""
            else:
                current += ch
        else:
            current += ch
    if current:
        pieces.append(current)
    return pieces


def _weights(text: str, weight: float, square: bool) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for piece in _split_groups(text, "([" if square else "(", ")]" if square else ")"):
        if len(piece) >= 2 and piece[0] == "(" and piece[-1] == ")":
            inner = piece[1:-1]
            new_weight = weight * 1.1
            colon = inner.rfind(":")
            if colon > 0:
                try:  # "(text:1.3)" sets the weight (absolute, as ComfyUI does)
                    new_weight = float(inner[colon + 1:])
                    inner = inner[:colon]
                except ValueError:
                    pass
            out += _weights(inner, new_weight, square)
        elif square and len(piece) >= 2 and piece[0] == "[" and piece[-1] == "]":
            out += _weights(piece[1:-1], weight / 1.1, square)
        else:
            out.append((piece, weight))
    return out


def parse_weights(text: str, square_brackets: bool | None = None) -> list[tuple[str, float]]:
    """Split a prompt into (text, weight) segments, ComfyUI's way: "(a b)" x1.1 (nested: multiplied),
    "(a b:1.3)" = 1.3, "\\(" and "\\)" are literal parentheses. With square_brackets, "[a]" /1.1 and
    "\\[" "\\]" are literal brackets."""
    square = SQUARE_BRACKETS_DOWNWEIGHT if square_brackets is None else square_brackets
    escapes = _PAREN_ESCAPES + (_BRACKET_ESCAPES if square else ())
    return [(_unescape(seg, escapes), w) for seg, w in _weights(_escape(text, escapes), 1.0, square) if seg]


# =============================================================================================
# Textual-inversion embeddings
# =============================================================================================

EMBEDDING_EXTENSIONS = (".safetensors", ".pt", ".bin", ".pth")


def find_embedding(name: str, directories: Sequence[str | Path]) -> Path | None:
    """The file of `embedding:name` (with or without extension, sub-folders allowed, no traversal)."""
    for root in directories:
        root = Path(root).resolve()
        if not root.is_dir():
            continue
        candidate = (root / name).resolve()
        if root not in candidate.parents:
            continue
        options = [candidate] if candidate.is_file() else []
        options += [candidate.with_name(candidate.name + ext) for ext in EMBEDDING_EXTENSIONS]
        for option in options:
            if option.is_file():
                return option
    return None


def load_embedding(path: Path, width: int, key: str | None = None) -> torch.Tensor | None:
    """Vectors [n, width] of a textual-inversion file (A1111 .pt, safetensors 'emb_params', SDXL clip_l/clip_g)."""
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file
            data = load_file(str(path), device="cpu")
        else:
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # a broken embedding is skipped with a warning, as ComfyUI does
        log.warning("embedding %s could not be loaded: %s", path.name, exc)
        return None
    tensor = None
    if isinstance(data, dict) and isinstance(data.get("string_to_param"), dict):
        tensor = next(iter(data["string_to_param"].values()), None)
    elif isinstance(data, dict) and key is not None and key in data:
        tensor = data[key]
    elif isinstance(data, dict):
        matching = [v for v in data.values() if isinstance(v, torch.Tensor) and v.shape[-1] == width]
        tensor = matching[0] if matching else next((v for v in data.values() if isinstance(v, torch.Tensor)), None)
    elif isinstance(data, torch.Tensor):
        tensor = data
    if tensor is None:
        return None
    tensor = tensor.detach().float().reshape(-1, tensor.shape[-1])
    if tensor.shape[-1] != width:
        log.warning("embedding %s has width %d, the text encoder %d: ignored", path.name, tensor.shape[-1], width)
        return None
    return tensor


# =============================================================================================
# Tokenizing with weights and chunks
# =============================================================================================

@dataclass(frozen=True)
class TokenizerOptions:
    pad_token: int = EOS  # SD1 / CLIP-L pad with EOS; open_clip encoders (SD2, SDXL bigG) with 0
    embedding_width: int = 768
    embedding_key: str | None = "clip_l"
    length: int = CHUNK_LENGTH


def tokenize_with_weights(text: str, options: TokenizerOptions = TokenizerOptions(),
                          embedding_dirs: Sequence[str | Path] = (), tokenizer: ClipTokenizer | None = None,
                          square_brackets: bool | None = None) -> list[WeightedChunk]:
    """Chunks of `options.length` (token, weight) pairs: BOS, up to 75 tokens, EOS, padding."""
    tok = tokenizer or get_tokenizer()
    groups: list[list[tuple[Token, float]]] = []  # one group per word or embedding
    for segment, weight in parse_weights(text, square_brackets):
        for word in segment.replace("\n", " ").split(" "):
            if not word:
                continue
            if word.startswith(EMBEDDING_PREFIX) and embedding_dirs:
                name = word[len(EMBEDDING_PREFIX):]
                vectors, leftover = _lookup_embedding(name, options, embedding_dirs)
                if vectors is None:
                    log.warning("embedding:%s not found in %s; ignored", name, ", ".join(map(str, embedding_dirs)))
                else:
                    groups.append([(v, weight) for v in vectors])
                if not leftover:
                    continue
                word = leftover
            exact = tok.encoder.get(word + "</w>")
            ids = [exact] if exact is not None else tok.encode(word)
            groups.append([(i, weight) for i in ids])
    return _chunk(groups, options, tok)


def _lookup_embedding(name: str, options: TokenizerOptions, dirs: Sequence[str | Path]):
    path = find_embedding(name, dirs)
    leftover = ""
    if path is None:  # "embedding:name," : the trailing punctuation is text
        stripped = name.rstrip(",")
        if stripped != name:
            path, leftover = find_embedding(stripped, dirs), name[len(stripped):]
    if path is None:
        return None, leftover
    return load_embedding(path, options.embedding_width, options.embedding_key), leftover


def _chunk(groups: list[list[tuple[Token, float]]], options: TokenizerOptions, tok: ClipTokenizer) -> list[WeightedChunk]:
    limit = options.length - 1  # room left before the EOS
    chunks: list[WeightedChunk] = []
    chunk: WeightedChunk = [(tok.bos, 1.0)]
    for group in groups:
        is_large = len(group) >= MAX_WORD_LENGTH
        while group:
            if len(group) + len(chunk) > limit:
                room = limit - len(chunk)
                if is_large:  # long words are cut at the boundary
                    chunk.extend(group[:room])
                    group = group[room:]
                    chunk.append((tok.eos, 1.0))
                else:  # short words move to the next chunk whole
                    chunk.append((tok.eos, 1.0))
                    chunk.extend([(options.pad_token, 1.0)] * room)
                chunks.append(chunk)
                chunk = [(tok.bos, 1.0)]
            else:
                chunk.extend(group)
                group = []
    chunk.append((tok.eos, 1.0))
    chunk.extend([(options.pad_token, 1.0)] * (options.length - len(chunk)))
    chunks.append(chunk)
    return chunks


def empty_chunk(options: TokenizerOptions, length: int | None = None) -> WeightedChunk:
    """BOS, EOS, padding: what the weighting formula measures against."""
    length = length or options.length
    return [(BOS, 1.0), (EOS, 1.0)] + [(options.pad_token, 1.0)] * (length - 2)


# =============================================================================================
# Encoding
# =============================================================================================

def _embed_tokens(core: torch.nn.Module, chunks: Sequence[Sequence[Token]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token embeddings [N, T, D] (textual-inversion vectors spliced in) and the EOS positions [N]."""
    table = core.embeddings.token_embedding.weight
    rows, eos_positions = [], []
    for chunk in chunks:
        ids = torch.tensor([t if isinstance(t, int) else 0 for t in chunk], device=table.device)
        emb = table[ids]
        for i, t in enumerate(chunk):
            if isinstance(t, torch.Tensor):  # indexing made a copy: the table itself is untouched
                emb[i] = t.to(emb.device, emb.dtype)
        rows.append(emb)
        eos = next((i for i, t in enumerate(chunk) if isinstance(t, int) and t == EOS), len(chunk) - 1)
        eos_positions.append(eos)
    return torch.stack(rows), torch.tensor(eos_positions, device=table.device)


def run_text_encoder(model: torch.nn.Module, chunks: Sequence[Sequence[Token]], layer_idx: int | None = None,
                     layer_norm_hidden: bool = True, project_pooled: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """CLIP forward pass ComfyUI-style. Returns (hidden [N, T, D], pooled [N, P]).

    layer_idx None: the final layer output after the final LayerNorm. Otherwise the output of
    layer `layer_idx` (negative counts from the end: -1 last, -2 penultimate), after the final
    LayerNorm only when layer_norm_hidden. Pooled: the final output at the first EOS, projected
    when the model has a text projection and project_pooled.
    """
    from .checkpoint.modules import clip_core, clip_projection
    core = clip_core(model)
    embeds, eos = _embed_tokens(core, chunks)
    n, length = embeds.shape[:2]
    positions = core.embeddings.position_embedding.weight[:length]
    hidden = embeds + positions.to(embeds.dtype)
    mask = torch.full((length, length), torch.finfo(hidden.dtype).min, device=hidden.device, dtype=hidden.dtype).triu(1)
    mask = mask[None, None].expand(n, 1, length, length)
    layers = core.encoder.layers
    num_layers = len(layers)
    if layer_idx is not None and not -num_layers <= layer_idx < num_layers:
        layer_idx = None  # out of range means "last", as in ComfyUI
    stop = None if layer_idx is None else (layer_idx % num_layers)
    intermediate = None
    for i, layer in enumerate(layers):
        out = layer(hidden, mask)
        hidden = out[0] if isinstance(out, tuple) else out
        if i == stop:
            intermediate = hidden
    final = core.final_layer_norm(hidden)
    if intermediate is None:
        z = final
    else:
        z = core.final_layer_norm(intermediate) if layer_norm_hidden else intermediate
    pooled = final[torch.arange(n, device=final.device), eos]
    projection = clip_projection(model)
    if projection is not None and project_pooled:
        pooled = projection(pooled)
    return z, pooled


@torch.no_grad()
def encode_weighted(model: torch.nn.Module, chunks: Sequence[WeightedChunk], options: TokenizerOptions,
                    layer_idx: int | None = None, layer_norm_hidden: bool = True,
                    project_pooled: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """ComfyUI's encode_token_weights for one encoder: returns (cond [1, 77*chunks, D], pooled [1, P])."""
    token_rows = [[t for t, _ in chunk] for chunk in chunks]
    has_weights = any(w != 1.0 for chunk in chunks for _, w in chunk)
    if has_weights or not token_rows:
        token_rows.append([t for t, _ in empty_chunk(options, max((len(c) for c in chunks), default=options.length))])
    z, pooled = run_text_encoder(model, token_rows, layer_idx, layer_norm_hidden, project_pooled)
    z, pooled = z.float(), pooled.float()
    outputs = []
    for k, chunk in enumerate(chunks):
        zk = z[k].clone()
        if has_weights:
            weights = torch.tensor([w for _, w in chunk], dtype=zk.dtype, device=zk.device)[:, None]
            z_empty = z[-1]
            zk = torch.where(weights != 1.0, (zk - z_empty) * weights + z_empty, zk)
        outputs.append(zk)
    cond = torch.cat(outputs, dim=0)[None] if outputs else z[-1:]
    return cond, pooled[0:1]
