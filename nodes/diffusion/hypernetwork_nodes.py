"""HypernetworkLoader (ComfyUI 0.8 comfy_extras/nodes_hypernetwork.py): A1111-style hypernetworks as an
attention input patch.

A hypernetwork file is a tree, not a state dict: {width: [net_k, net_v], "activation_func": "relu",
"is_layer_norm": False, "use_dropout": ..., "activate_output": ..., "last_layer_dropout": ...}, each net a
state dict of linear (and layer-norm) layers in order ("linear.0.weight", "linear.2.weight" ...). For every
attention whose key/value input has that width (the hidden width for self-attention, the text width for
cross-attention), keys and values are made from x + strength * net(x) instead of x (ComfyUI's attn1/attn2
patch, applied before the k/v projections).

Dropout layers are left out: they are inactive at inference. (ComfyUI builds its nets in training mode, so
there a file with use_dropout samples random masks on every call; A1111, which made these files, does not.)
"""
from __future__ import annotations

import copy
import re

import torch

from nodegraph import MODEL, Float, Input, ModelFile, Output, WeightsFile, node

from .model_options import add_unet_patch, patched

__all__ = ["HypernetworkLoader"]

ACTIVATIONS = {  # ComfyUI's table (its "swish" is torch's Hardswish)
    "linear": None, "relu": torch.nn.ReLU, "leakyrelu": torch.nn.LeakyReLU, "elu": torch.nn.ELU,
    "swish": torch.nn.Hardswish, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid,
    "softsign": torch.nn.Softsign, "mish": torch.nn.Mish,
}


def _flag(settings: dict, key: str) -> bool:
    return str(settings.get(key, "False")).strip().lower() in ("true", "1")


def _natural(key: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


def hypernetwork_layers(tensors: dict[str, torch.Tensor], activation: str, layer_norm: bool,
                        activate_output: bool, name: str = "hypernetwork") -> torch.nn.Sequential:
    """One net from its tensors (keys without the "width.index." prefix), in ComfyUI's layer order: each
    linear, then the activation unless it is the last entry of the weight list (or activate_output), then
    its layer norm. The weight list counts the layer norms, so with is_layer_norm the last linear is followed
    by the activation too: ComfyUI's rule, kept for the same pictures."""
    names = sorted((k[:-len(".weight")] for k in tensors if k.endswith(".weight")), key=_natural)
    layers: list[torch.nn.Module] = []
    i = 0
    while i < len(names):
        weight, bias = tensors[f"{names[i]}.weight"], tensors.get(f"{names[i]}.bias")
        if weight.ndim != 2 or bias is None:
            raise ValueError(f"{name}: {names[i]} is not a linear layer (weight {tuple(weight.shape)}, "
                             f"bias {'missing' if bias is None else tuple(bias.shape)})")
        linear = torch.nn.Linear(weight.shape[1], weight.shape[0])
        linear.load_state_dict({"weight": weight, "bias": bias})
        layers.append(linear)
        if ACTIVATIONS[activation] is not None and (i != len(names) - 1 or activate_output):
            layers.append(ACTIVATIONS[activation]())
        if layer_norm:
            i += 1
            if i >= len(names):
                raise ValueError(f"{name}: is_layer_norm is set but {names[i - 1]} has no layer norm after it")
            ln_weight, ln_bias = tensors[f"{names[i]}.weight"], tensors.get(f"{names[i]}.bias")
            norm = torch.nn.LayerNorm(ln_weight.shape[0])
            norm.load_state_dict({"weight": ln_weight, "bias": ln_bias})
            layers.append(norm)
        i += 1
    return torch.nn.Sequential(*layers).eval()


def build_hypernetwork(weights: WeightsFile) -> dict[int, torch.nn.ModuleList]:
    """{width: ModuleList([key net, value net])} from a (flattened) hypernetwork file."""
    settings = weights.metadata
    activation = str(settings.get("activation_func", "linear"))
    if activation not in ACTIVATIONS:
        raise ValueError(f"{weights.name}: activation_func {activation!r} is not one ComfyUI supports "
                         f"({', '.join(ACTIVATIONS)})")
    widths = sorted({int(k.split(".", 1)[0]) for k in weights.tensors if k.split(".", 1)[0].isdigit()})
    if not widths:
        raise ValueError(f"{weights.name}: not a hypernetwork (no per-width layers such as '768.0.linear.0.weight')")
    out = {}
    for width in widths:
        nets = []
        for index in (0, 1):
            prefix = f"{width}.{index}."
            part = {k[len(prefix):]: v for k, v in weights.tensors.items() if k.startswith(prefix)}
            if not part:
                raise ValueError(f"{weights.name}: width {width} has no {'key' if index == 0 else 'value'} net")
            nets.append(hypernetwork_layers(part, activation, _flag(settings, "is_layer_norm"),
                                            _flag(settings, "activate_output"), weights.name))
        out[width] = torch.nn.ModuleList(nets)
    return out


class HypernetworkPatch:
    """The attn1/attn2 input patch: k and v inputs of a known width get strength * net(x) added."""

    def __init__(self, nets: dict[int, torch.nn.ModuleList], strength: float) -> None:
        self.nets, self.strength = nets, float(strength)
        self._placed: dict[tuple, dict[int, torch.nn.ModuleList]] = {}  # (device, dtype) -> nets there

    def _on(self, device: torch.device, dtype: torch.dtype) -> dict[int, torch.nn.ModuleList]:
        if (device.type, dtype) == ("cpu", torch.float32):
            return self.nets
        key = (device, dtype)
        if key not in self._placed:  # copies: the loaded nets are shared by every handle of the file
            self._placed[key] = {w: copy.deepcopy(nets).to(device, dtype) for w, nets in self.nets.items()}
        return self._placed[key]

    def __call__(self, q, k, v, extra_options):
        nets = self._on(k.device, k.dtype).get(k.shape[-1])
        if nets is not None:
            k = k + nets[0](k) * self.strength
            v = v + nets[1](v) * self.strength
        return q, k, v


@node(category="loaders")
class HypernetworkLoader:
    """Patch the model's attention with a hypernetwork (A1111 .pt files) at the given strength."""
    inputs = [Input("model", MODEL), ModelFile("hypernetwork_name", folder="hypernetworks"),
              Float("strength", 1.0, min=-10.0, max=10.0, step=0.01)]
    outputs = [Output("MODEL", MODEL)]

    @classmethod
    def fingerprint(cls, env, hypernetwork_name, **_):
        return env.models.fingerprint("hypernetworks", hypernetwork_name)

    def run(self, ctx, model, hypernetwork_name, strength):
        nets = ctx.models.load("hypernetworks", hypernetwork_name, build_hypernetwork, nested=True,
                              size=lambda n: sum(p.numel() * p.element_size() for m in n.values() for p in m.parameters()))
        if strength == 0:  # x + 0 * net(x) is x: the plain model, and its fast path
            return (patched(model),)
        patch = HypernetworkPatch(nets, strength)

        def change(options):
            add_unet_patch(options, "attn1_patch", patch)
            add_unet_patch(options, "attn2_patch", patch)
        return (patched(model, change),)
