"""LoRA weight patches: small callables holding a LoRA's factors, `patch(weight) -> delta` shaped like
the target weight. The full delta is computed only when the device manager applies it, on the weight's
device, in float32, so a LoRA costs its file size in RAM. Kinds: LowRank (LoRA/LoCon, optional Tucker
mid), LoHa, LoKr (LyCORIS), FullDelta (.diff/.diff_b), DoRA (weight-decomposed, wraps another)."""
from __future__ import annotations

import math
from typing import Mapping

import torch


def _f32(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    return t.to(device=device, dtype=torch.float32)


def _tucker(core: torch.Tensor, in_factor: torch.Tensor, out_factor: torch.Tensor) -> torch.Tensor:
    """Conv weight [out, in, kh, kw] from a Tucker core [r_out, r_in, kh, kw], in factor [r_in, in] and
    out factor [out, r_out]."""
    return torch.einsum("ijkl,jr,pi->prkl", core, in_factor, out_factor)


class WeightPatch:
    """Base of the callable patches: `patch(weight) -> delta` shaped like the target weight."""

    shape: tuple[int, ...] = ()  # the target weight's shape (set when matched to a model)

    def natural_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def delta(self, device: torch.device) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, weight: torch.Tensor) -> torch.Tensor:
        return self.delta(weight.device).reshape(weight.shape)


class LowRank(WeightPatch):
    """LoRA / LoCon: delta = scale * up @ down (conv: k x k down, 1x1 up; optional Tucker mid)."""

    __slots__ = ("up", "down", "mid", "scale", "shape")

    def __init__(self, up: torch.Tensor, down: torch.Tensor, mid: torch.Tensor | None, scale: float) -> None:
        self.up, self.down, self.mid, self.scale = up, down, mid, float(scale)
        self.shape = ()

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])

    def natural_shape(self) -> tuple[int, ...]:
        if self.mid is not None:
            return (self.up.shape[0], self.down.shape[1], *self.mid.shape[2:])
        if self.down.ndim == 4:
            return (self.up.shape[0], *self.down.shape[1:])
        return (self.up.shape[0], self.down.shape[1])

    def delta(self, device: torch.device) -> torch.Tensor:
        up = _f32(self.up, device).flatten(1)
        if self.mid is not None:
            d = _tucker(_f32(self.mid, device), _f32(self.down, device).flatten(1), up)
        else:
            d = up @ _f32(self.down, device).flatten(1)
        return d * self.scale


class LoHa(WeightPatch):
    """LyCORIS LoHa: delta = scale * (w1a @ w1b) * (w2a @ w2b) (Hadamard product; optional Tucker t1, t2)."""

    __slots__ = ("w1a", "w1b", "w2a", "w2b", "t1", "t2", "scale", "shape")

    def __init__(self, w1a, w1b, w2a, w2b, t1, t2, scale: float) -> None:
        self.w1a, self.w1b, self.w2a, self.w2b, self.t1, self.t2 = w1a, w1b, w2a, w2b, t1, t2
        self.scale = float(scale)
        self.shape = ()

    def natural_shape(self) -> tuple[int, ...]:
        if self.t1 is not None:
            return (self.w1a.shape[1], self.w1b.shape[1], *self.t1.shape[2:])
        return (self.w1a.shape[0], int(math.prod(self.w1b.shape[1:])))

    def delta(self, device: torch.device) -> torch.Tensor:
        f = lambda t: _f32(t, device)  # noqa: E731
        if self.t1 is not None:  # LyCORIS' Tucker LoHa: wa is [r, out], wb [r, in]
            w1 = torch.einsum("ijkl,jr,ip->prkl", f(self.t1), f(self.w1b), f(self.w1a))
            w2 = torch.einsum("ijkl,jr,ip->prkl", f(self.t2), f(self.w2b), f(self.w2a))
        else:
            w1 = f(self.w1a) @ f(self.w1b).flatten(1)
            w2 = f(self.w2a) @ f(self.w2b).flatten(1)
        return w1 * w2 * self.scale


class LoKr(WeightPatch):
    """LyCORIS LoKr: delta = scale * kron(w1, w2), each factor full or low-rank (w2 optionally Tucker)."""

    __slots__ = ("w1", "w1a", "w1b", "w2", "w2a", "w2b", "t2", "scale", "shape")

    def __init__(self, parts: Mapping[str, torch.Tensor], scale: float) -> None:
        for name in ("w1", "w1a", "w1b", "w2", "w2a", "w2b", "t2"):
            setattr(self, name, parts.get(name))
        self.scale = float(scale)
        self.shape = ()

    def _factors(self, device: torch.device | None) -> tuple[torch.Tensor, torch.Tensor]:
        def f(t):
            return t if device is None else _f32(t, device)
        w1 = f(self.w1) if self.w1 is not None else f(self.w1a) @ f(self.w1b)
        if self.w2 is not None:
            w2 = f(self.w2)
        elif self.t2 is not None:
            w2 = torch.einsum("ijkl,jr,ip->prkl", f(self.t2), f(self.w2b), f(self.w2a))
        else:
            w2 = f(self.w2a) @ f(self.w2b).flatten(1)
        return w1, w2

    def natural_shape(self) -> tuple[int, ...]:
        w1, w2 = self._factors(torch.device("meta"))
        return tuple(a * b for a, b in zip(w1.shape, w2.shape[:2])) + tuple(w2.shape[2:])

    def delta(self, device: torch.device) -> torch.Tensor:
        w1, w2 = self._factors(device)
        if w2.ndim == 4:
            w1 = w1[:, :, None, None]
        return torch.kron(w1, w2) * self.scale


class FullDelta(WeightPatch):
    """A stored full difference (.diff / .diff_b, or a peft lora_B bias) times a scale."""

    __slots__ = ("diff", "scale", "shape")

    def __init__(self, diff: torch.Tensor, scale: float = 1.0) -> None:
        self.diff, self.scale, self.shape = diff, float(scale), ()

    def natural_shape(self) -> tuple[int, ...]:
        return tuple(self.diff.shape)

    def delta(self, device: torch.device) -> torch.Tensor:
        return _f32(self.diff, device) * self.scale


class DoRA(WeightPatch):
    """Weight-decomposed LoRA: w' = magnitude * (w + d) / ||w + d||, the norm per output channel (peft's
    lora_magnitude_vector [out]) or per input column (kohya/LyCORIS dora_scale [1, in, ...]).
    The delta depends on the weight it is applied to (w' - w), so it needs the current weight."""

    __slots__ = ("inner", "magnitude", "shape")

    def __init__(self, inner: WeightPatch, magnitude: torch.Tensor) -> None:
        self.inner, self.magnitude, self.shape = inner, magnitude, ()

    def natural_shape(self) -> tuple[int, ...]:
        return self.inner.natural_shape()

    def __call__(self, weight: torch.Tensor) -> torch.Tensor:
        w = weight.float()
        combined = w + self.inner.delta(weight.device).reshape(weight.shape)
        m = _f32(self.magnitude, weight.device)
        if m.numel() == combined.shape[0]:  # one magnitude per output channel
            norm = combined.reshape(combined.shape[0], -1).norm(dim=1)
            scaled = combined * (m.flatten() / (norm + 1e-8)).view(-1, *[1] * (combined.ndim - 1))
        else:  # one magnitude per input column: norm over the output axis
            norm = combined.transpose(0, 1).reshape(combined.shape[1], -1).norm(dim=1)
            view = [1, -1] + [1] * (combined.ndim - 2)
            scaled = combined * (m.reshape(view) / (norm.view(view) + 1e-8))
        return scaled - w
