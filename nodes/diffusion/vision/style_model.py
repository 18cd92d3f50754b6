"""T2I-Adapter style models (ComfyUI's comfy/t2i_adapter/adapter.py StyleAdapter, loaded by
comfy.sd.load_style_model): learnt style tokens appended to the CLIP vision tokens, a few transformer
blocks, and the tokens' outputs projected to the text-context width. Key names are the original file's."""
from __future__ import annotations

import json
from collections import OrderedDict

import torch
from torch import nn

from nodegraph import ModelFileError, ModelHandle

HINTS_KEY = "nodegraph.hints"


class _LayerNorm(nn.LayerNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # computed in float32, as the original
        return super().forward(x.float()).to(x.dtype)


class _QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class _Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = _LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, width * 4)), ("gelu", _QuickGELU()),
                                              ("c_proj", nn.Linear(width * 4, width))]))
        self.ln_2 = _LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [L, N, D]
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class StyleAdapter(nn.Module):
    """[N, tokens, width] CLIP vision hidden states -> [N, num_token, context_dim] style tokens."""

    def __init__(self, width: int = 1024, context_dim: int = 768, num_head: int = 8, n_layers: int = 3,
                 num_token: int = 8) -> None:
        super().__init__()
        self.transformer_layes = nn.Sequential(*[_Block(width, num_head) for _ in range(n_layers)])  # sic, the file's
        self.num_token = num_token
        self.style_embedding = nn.Parameter(torch.zeros(1, num_token, width))
        self.ln_post = _LayerNorm(width)
        self.ln_pre = _LayerNorm(width)
        self.proj = nn.Parameter(torch.zeros(width, context_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.proj.dtype)
        style = self.style_embedding.expand(x.shape[0], -1, -1)
        x = self.ln_pre(torch.cat([x, style], dim=1))
        x = self.transformer_layes(x.permute(1, 0, 2)).permute(1, 0, 2)
        return self.ln_post(x[:, -self.num_token:, :]) @ self.proj


class StyleModel(nn.Module):
    """The STYLE_MODEL value's module; get_cond(clip_vision_output) as comfy.sd.StyleModel."""

    def __init__(self, adapter: StyleAdapter) -> None:
        super().__init__()
        self.adapter = adapter

    def get_cond(self, clip_vision_output) -> torch.Tensor:
        device = self.adapter.proj.device
        return self.adapter(clip_vision_output.last_hidden_state.to(device)).float()


def build_style_model(weights) -> ModelHandle:
    """A STYLE_MODEL handle from a WeightsFile in the T2I-Adapter style layout (`style_embedding` ...).
    ComfyUI fixes width 1024, context 768, 8 heads, 3 blocks, 8 tokens; here they come from the shapes
    (the same for the real file), heads from a hint or ComfyUI's 8."""
    sd = weights.tensors
    if "style_embedding" not in sd:
        if "redux_down.weight" in sd:
            raise ModelFileError(f"{weights.name}: a Flux Redux style model; nodegraph has no Flux models")
        raise ModelFileError(f"{weights.name}: not a style model (no 'style_embedding' key)")
    _one, num_token, width = sd["style_embedding"].shape
    layers = 0
    while f"transformer_layes.{layers}.attn.in_proj_weight" in sd:
        layers += 1
    try:
        hints = json.loads(weights.metadata.get(HINTS_KEY, "{}") or "{}")
    except ValueError:
        hints = {}
    adapter = StyleAdapter(int(width), int(sd["proj"].shape[1]), int(hints.get("num_attention_heads", 8)), layers,
                           int(num_token))
    missing, unexpected = adapter.load_state_dict(dict(sd), strict=False)
    if missing or unexpected:
        raise ModelFileError(f"{weights.name}: style model keys do not match the StyleAdapter layout "
                             f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    return ModelHandle(StyleModel(adapter.eval()), weights.path.stem,
                       info={"kind": "style_model", "tokens": int(num_token), "context_dim": int(sd["proj"].shape[1])})
