"""ControlNet nodes with ComfyUI's names, inputs and outputs: ControlNetLoader, ControlNetApply (the
old single-conditioning node) and ControlNetApplyAdvanced.

Applying a ControlNet puts a copy of the CONTROL_NET, with the hint image, strength and step window,
into each conditioning entry's extras["control"], chained to the control the entry already had, so
several ControlNets stack (their residuals add up, each with its own strength and window). The
sampler (sampling/pipeline.py, guidance.py) runs them and adds the residuals inside the U-Net.
"""
from __future__ import annotations

from nodegraph import CONDITIONING, CONTROL_NET, IMAGE, VAE, Float, Input, ModelFile, Output, node

from .controlnet import ControlNet, controlnet_from_loaded
from .controlnet_files import load_controlnet_file
from .t2i_adapter import load_t2i_adapter_file

__all__ = ["ControlNetApply", "ControlNetApplyAdvanced", "ControlNetLoader"]


@node(category="loaders", display_name="Load ControlNet Model")
class ControlNetLoader:
    """Load a ControlNet: original single-file layout (control_model.* / input_hint_block / zero_convs,
    with or without the prefix) or diffusers layout (a file, or a folder with config.json); or a T2I-Adapter
    (full, light, SDXL or diffusers layout; see t2i_adapter.py)."""
    inputs = [ModelFile("control_net_name", folder="controlnet")]
    outputs = [Output("CONTROL_NET", CONTROL_NET)]

    @classmethod
    def fingerprint(cls, env, control_net_name):
        return env.models.fingerprint("controlnet", control_net_name)

    def run(self, ctx, control_net_name):
        def build(path) -> ControlNet:  # by path: a diffusers ControlNet is a folder, or a file beside config.json
            adapter = load_t2i_adapter_file(path, ctx.devices, path.name)
            if adapter is not None:
                return adapter
            return controlnet_from_loaded(load_controlnet_file(path), ctx.devices, path.name)

        return (ctx.models.load_path("controlnet", control_net_name, build),)


def _hint(control_net: ControlNet, image):
    """IMAGE [B,H,W,C] -> hint [B,C,H,W], checked against the ControlNet's input channels."""
    if image.ndim != 4:
        raise ValueError(f"image: expected an IMAGE batch [B,H,W,C], got shape {tuple(image.shape)}")
    wanted = getattr(control_net, "hint_channels", image.shape[-1])
    if image.shape[-1] != wanted:
        raise ValueError(f"image: has {image.shape[-1]} channels, this ControlNet takes {wanted}")
    return image.movedim(-1, 1)


@node(category="conditioning/controlnet", display_name="Apply ControlNet (OLD)")
class ControlNetApply:
    """Apply a ControlNet to one conditioning (the sampler gives the negative prompt the same control)."""
    inputs = [Input("conditioning", CONDITIONING), Input("control_net", CONTROL_NET), Input("image", IMAGE),
              Float("strength", 1.0, min=0.0, max=10.0, step=0.01)]
    outputs = [Output("CONDITIONING", CONDITIONING)]

    def run(self, ctx, conditioning, control_net, image, strength):
        if strength == 0:
            return (conditioning,)
        hint = _hint(control_net, image)
        out = []
        for cond, extras in conditioning:
            extras = dict(extras)
            control = control_net.copy().set_cond_hint(hint, strength)
            if extras.get("control") is not None:
                control.set_previous_controlnet(extras["control"])
            extras["control"] = control
            extras["control_apply_to_uncond"] = True
            out.append([cond, extras])
        return (out,)


@node(category="conditioning/controlnet", display_name="Apply ControlNet")
class ControlNetApplyAdvanced:
    """Apply a ControlNet to the positive and negative conditioning, from start_percent to end_percent
    of the steps. Entries that had the same control before share the new one (one forward for both)."""
    inputs = [Input("positive", CONDITIONING), Input("negative", CONDITIONING), Input("control_net", CONTROL_NET),
              Input("image", IMAGE), Float("strength", 1.0, min=0.0, max=10.0, step=0.01),
              Float("start_percent", 0.0, min=0.0, max=1.0, step=0.001),
              Float("end_percent", 1.0, min=0.0, max=1.0, step=0.001),
              Input("vae", VAE, optional=True,
                    tooltip="Only for ControlNets that take a latent hint; SD1.x/SD2.x/SDXL ControlNets ignore it.")]
    outputs = [Output("positive", CONDITIONING), Output("negative", CONDITIONING)]

    def run(self, ctx, positive, negative, control_net, image, strength, start_percent, end_percent, vae=None):
        if strength == 0:
            return positive, negative
        hint = _hint(control_net, image)
        made: dict[int, ControlNet] = {}  # previous control (by identity) -> its new control
        sides = []
        for conditioning in (positive, negative):
            side = []
            for cond, extras in conditioning:
                extras = dict(extras)
                previous = extras.get("control")
                control = made.get(id(previous))
                if control is None:
                    control = control_net.copy().set_cond_hint(hint, strength, (start_percent, end_percent))
                    control.set_previous_controlnet(previous)
                    made[id(previous)] = control
                extras["control"] = control
                extras["control_apply_to_uncond"] = False
                side.append([cond, extras])
            sides.append(side)
        return sides[0], sides[1]
