"""GLIGEN text-box grounding (ComfyUI's comfy/gligen.py, loaded as comfy.sd.load_gligen does).

A GLIGEN file holds a position net (`position_net.*`: Fourier features of each box concatenated with the
box's pooled text embedding, through three linears) and one gated self-attention "fuser" per spatial
transformer of the U-Net (`input_blocks.N.1.transformer_blocks.0.fuser.*`, `middle_block.1...`,
`output_blocks.N.1...`). At sampling time the fusers run between each transformer block's self-attention
and cross-attention (ComfyUI's "middle_patch"), indexed by the spatial transformer's position in the
forward pass ("transformer_index").
"""
from __future__ import annotations

import json
import re
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from nodegraph import ModelFileError, ModelHandle

HINTS_KEY = "nodegraph.hints"  # metadata JSON: {"num_attention_heads": n} for files off ComfyUI's rule
MAX_OBJS = 30  # boxes per conditioning entry (ComfyUI's Gligen.max_objs)
_FUSER_BLOCK = re.compile(r"(input_blocks|middle_block|output_blocks)\.(\d+)\.")
_BLOCK_ORDER = {"input_blocks": 0, "middle_block": 1, "output_blocks": 2}


def fourier_embed(x: torch.Tensor, num_freqs: int = 8, temperature: float = 100.0) -> torch.Tensor:
    """[..., 4] boxes -> [..., 4 * 2 * num_freqs]: sin and cos of every coordinate at temperature ** (i / n),
    grouped per frequency (sin of the 4 coordinates, then their cos), as GLIGEN's FourierEmbedder."""
    bands = temperature ** (torch.arange(num_freqs) / num_freqs)
    out = []
    for freq in bands:
        out += [torch.sin(freq * x), torch.cos(freq * x)]
    return torch.cat(out, dim=-1)


class PositionNet(nn.Module):
    """Boxes + their text embeddings -> object tokens [B, N, out_dim]; padded boxes use the learnt nulls."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 512, fourier_freqs: int = 8) -> None:
        super().__init__()
        self.fourier_freqs = fourier_freqs
        position_dim = fourier_freqs * 2 * 4
        self.linears = nn.Sequential(nn.Linear(in_dim + position_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden),
                                     nn.SiLU(), nn.Linear(hidden, out_dim))
        self.null_positive_feature = nn.Parameter(torch.zeros([in_dim]))
        self.null_position_feature = nn.Parameter(torch.zeros([position_dim]))

    def forward(self, boxes: torch.Tensor, masks: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        masks = masks.unsqueeze(-1)
        xyxy = fourier_embed(boxes, self.fourier_freqs)
        embeddings = embeddings * masks + (1 - masks) * self.null_positive_feature.view(1, 1, -1)
        xyxy = xyxy * masks + (1 - masks) * self.null_position_feature.view(1, 1, -1)
        return self.linears(torch.cat([embeddings, xyxy], dim=-1))


class _Attention(nn.Module):
    """ldm's CrossAttention used as self-attention (to_q/k/v without bias, to_out.0 with)."""

    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q, self.to_k, self.to_v = (nn.Linear(dim, inner, bias=False) for _ in range(3))
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from ..unet_patches import attention
        return self.to_out(attention(self.to_q(x), self.to_k(x), self.to_v(x), self.heads))


class _GEGLU(nn.Module):
    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * nn.functional.gelu(gate)


class _FeedForward(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(_GEGLU(dim, dim * 4), nn.Dropout(0.0), nn.Linear(dim * 4, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class GatedSelfAttentionDense(nn.Module):
    """x + tanh(alpha_attn) * selfattn([x, objs])[:x] ; x + tanh(alpha_dense) * ff(x) (a zero gate: no effect)."""

    def __init__(self, query_dim: int, context_dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        self.linear = nn.Linear(context_dim, query_dim)
        self.attn = _Attention(query_dim, heads, dim_head)
        self.ff = _FeedForward(query_dim)
        self.norm1 = nn.LayerNorm(query_dim)
        self.norm2 = nn.LayerNorm(query_dim)
        self.alpha_attn = nn.Parameter(torch.tensor(0.0))
        self.alpha_dense = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: torch.Tensor, objs: torch.Tensor) -> torch.Tensor:
        n_visual = x.shape[1]
        objs = self.linear(objs)
        x = x + torch.tanh(self.alpha_attn) * self.attn(self.norm1(torch.cat([x, objs], dim=1)))[:, :n_visual]
        return x + torch.tanh(self.alpha_dense) * self.ff(self.norm2(x))


class Gligen(nn.Module):
    """The GLIGEN value's module: the position net and the fusers in U-Net order."""

    def __init__(self, fusers: list[GatedSelfAttentionDense], position_net: PositionNet, key_dim: int) -> None:
        super().__init__()
        self.module_list = nn.ModuleList(fusers)
        self.position_net = position_net
        self.key_dim = key_dim

    def _patch(self, boxes: torch.Tensor, masks: torch.Tensor, embeddings: torch.Tensor):
        objs = self.position_net(boxes, masks, embeddings)

        def middle_patch(x: torch.Tensor, extra_options: dict) -> torch.Tensor:
            fuser = self.module_list[extra_options["transformer_index"]]
            return fuser(x, objs.to(device=x.device, dtype=x.dtype))
        return middle_patch

    def set_position(self, latent_shape, position_params: list, device: torch.device):
        """The middle patch for boxes (pooled text [1, D], h, w, y, x in latent cells) on a latent of this
        shape: boxes as fractions (x1, y1, x2, y2), padded with masked zeros to MAX_OBJS."""
        batch, _c, h, w = latent_shape
        if len(position_params) > MAX_OBJS:
            raise ValueError(f"GLIGEN takes at most {MAX_OBJS} boxes per conditioning, got {len(position_params)}")
        param = self.position_net.null_positive_feature
        masks = torch.zeros([MAX_OBJS])
        boxes = torch.zeros([MAX_OBJS, 4])
        embeddings = torch.zeros([MAX_OBJS, self.key_dim])
        for i, (pooled, bh, bw, y, x) in enumerate(position_params):
            masks[i] = 1.0
            boxes[i] = torch.tensor([x / w, y / h, (x + bw) / w, (y + bh) / h])
            embeddings[i] = pooled.reshape(-1).float()
        return self._patch(*(t.unsqueeze(0).repeat(batch, *[1] * t.ndim).to(device, param.dtype)
                             for t in (boxes, masks, embeddings)))

    def set_empty(self, latent_shape, device: torch.device):
        return self.set_position(latent_shape, [], device)


def _fuser_groups(sd) -> list[tuple[tuple[int, int], dict]]:
    """{fuser-local key: tensor} per U-Net block holding a fuser, in U-Net order (ComfyUI keeps one per block)."""
    groups: dict[tuple[int, int], dict] = {}
    for key, value in sd.items():
        if ".fuser." not in key:
            continue
        head, local = key.split(".fuser.", 1)
        match = _FUSER_BLOCK.search(head)
        if match is None:
            raise ModelFileError(f"GLIGEN key {key!r}: a fuser outside input_blocks/middle_block/output_blocks")
        groups.setdefault((_BLOCK_ORDER[match.group(1)], int(match.group(2))), {})[local] = value
    return sorted(groups.items())


def build_gligen(weights) -> ModelHandle:
    """A GLIGEN handle from a WeightsFile in the original layout; every key must be used."""
    sd = weights.tensors
    if not any(k.endswith("position_net.null_positive_feature") for k in sd):
        raise ModelFileError(f"{weights.name}: not a GLIGEN model (no 'position_net.null_positive_feature' key)")
    try:
        hints = json.loads(weights.metadata.get(HINTS_KEY, "{}") or "{}")
    except ValueError:
        hints = {}
    fusers, key_dim = [], 768
    for _block, local in _fuser_groups(sd):
        if "linear.weight" not in local:
            raise ModelFileError(f"{weights.name}: a GLIGEN fuser without 'linear.weight'")
        query_dim, key_dim = (int(n) for n in local["linear.weight"].shape)
        # heads do not show in the weights: SD1.x files 8 heads, others 64-wide heads (ComfyUI); a hint may say
        heads = int(hints.get("num_attention_heads") or (8 if key_dim == 768 else query_dim // 64))
        if heads < 1 or query_dim % heads:
            raise ModelFileError(f"{weights.name}: GLIGEN fuser width {query_dim} does not split into {heads} heads")
        fuser = GatedSelfAttentionDense(query_dim, key_dim, heads, query_dim // heads)
        _load_strict(fuser, local, weights.name, "fuser")
        fusers.append(fuser)
    pos = {k.split("position_net.", 1)[1]: v for k, v in sd.items() if "position_net." in k}
    net = PositionNet(int(pos["null_positive_feature"].shape[0]), int(pos["linears.4.weight"].shape[0]),
                      hidden=int(pos["linears.0.weight"].shape[0]))
    _load_strict(net, pos, weights.name, "position_net")
    if not fusers:
        raise ModelFileError(f"{weights.name}: a GLIGEN file without fusers ('*.fuser.*' keys)")
    return ModelHandle(Gligen(fusers, net.eval(), int(key_dim)).eval(), weights.path.stem,
                       info={"kind": "gligen", "fusers": len(fusers), "key_dim": int(key_dim)})


def _load_strict(module: nn.Module, sd: dict, name: str, part: str) -> None:
    missing, unexpected = module.load_state_dict(dict(sd), strict=False)
    if missing or unexpected:
        raise ModelFileError(f"{name}: GLIGEN {part} keys do not match the original layout "
                             f"(missing {missing[:5]}, unexpected {unexpected[:5]})")


class GligenRef:
    """What GLIGENTextBoxApply puts in a conditioning entry's ("position", GligenRef, boxes): the GLIGEN
    handle and the device manager that places it while the sampler runs."""

    def __init__(self, handle: ModelHandle, devices) -> None:
        self.handle, self.devices = handle, devices

    @contextmanager
    def middle_patch(self, kind: str, position_params: list, latent_shape, device: torch.device) -> Iterator:
        """The U-Net middle patch for one model call on a latent of this shape, with the model placed."""
        with self.devices.use(self.handle) as gligen:
            if kind == "position":
                yield gligen.set_position(latent_shape, position_params, device)
            else:
                yield gligen.set_empty(latent_shape, device)
