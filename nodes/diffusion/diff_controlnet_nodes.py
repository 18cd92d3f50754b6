"""DiffControlNetLoader (ComfyUI 0.8 nodes.py): a "difference" ControlNet stores each of its weights that
the U-Net also has (control_model.input_blocks / middle_block / time_embed / label_emb) as a delta to
the base model it was trained from, and a "difference" marker key. As comfy/controlnet.py does, the
given model's weights (with its patches, e.g. LoRAs) are added back, in the file's dtype; then the file
loads as an ordinary original-layout ControlNet."""
from __future__ import annotations

from pathlib import Path

import torch

from nodegraph import CONTROL_NET, MODEL, Input, ModelFile, Output, node, read_weights

from .checkpoint.to_ldm import unet_to_ldm
from .controlnet import controlnet_from_loaded
from .controlnet_files import ControlNetError, load_controlnet_state_dict

__all__ = ["DiffControlNetLoader"]

CONTROL_PREFIX = "control_model."
DIFFERENCE_KEY = "difference"


def add_base_weights(sd: dict[str, torch.Tensor], unet_ldm: dict[str, torch.Tensor]) -> tuple[dict, int]:
    """The full ControlNet of a difference file: control_model.X + the U-Net's X where the U-Net has X.
    Returns (state dict without the marker, how many weights got a base added)."""
    out, added = {}, 0
    for key, value in sd.items():
        if key == DIFFERENCE_KEY:
            continue
        base = unet_ldm.get(key[len(CONTROL_PREFIX):]) if key.startswith(CONTROL_PREFIX) else None
        if base is not None and base.shape == value.shape:
            value = value + base.to(device=value.device, dtype=value.dtype)
            added += 1
        out[key] = value
    return out, added


@node(category="loaders")
class DiffControlNetLoader:
    """Load a ControlNet; a "difference" ControlNet gets the model's weights added back (as ComfyUI)."""
    inputs = [Input("model", MODEL), ModelFile("control_net_name", folder="controlnet")]
    outputs = [Output("CONTROL_NET", CONTROL_NET)]

    @classmethod
    def fingerprint(cls, env, control_net_name, **_):
        return env.models.fingerprint("controlnet", control_net_name)

    def run(self, ctx, model, control_net_name):
        weights = read_weights(ctx.models.find("controlnet", control_net_name), control_net_name)
        sd, metadata = dict(weights.tensors), weights.metadata
        if DIFFERENCE_KEY in sd:  # else a full ControlNet, loaded as it is (ComfyUI's workflows use both)
            with ctx.devices.use(model) as diffusion:
                unet = diffusion.unet
                unet_ldm = {k: v.detach().to("cpu", copy=True) for k, v in unet_to_ldm(unet.state_dict(),
                                                                                         unet.config).items()}
            sd, added = add_base_weights(sd, unet_ldm)
            if not added:
                raise ControlNetError(f"control_net_name {control_net_name!r}: a difference ControlNet, but none of "
                                      f"its control_model.* weights fits the model's U-Net ({model.name})")
        loaded = load_controlnet_state_dict(sd, metadata, name=Path(control_net_name).name)
        return (controlnet_from_loaded(loaded, ctx.devices, Path(control_net_name).name),)
