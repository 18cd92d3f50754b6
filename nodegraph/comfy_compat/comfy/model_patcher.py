"""ComfyUI's comfy.model_patcher: the ModelPatcher class (for isinstance checks) and the model_options
helpers packs call on a plain options dict."""
from __future__ import annotations

from ..model_surface import service
from ..surface import unsupported


def set_model_options_patch_replace(model_options: dict, patch, name: str, block_name: str, number: int,
                                    transformer_index=None) -> dict:
    to = dict(model_options.get("transformer_options", {}))
    replace = dict(to.get("patches_replace", {}))
    table = dict(replace.get(name, {}))
    table[(block_name, number) if transformer_index is None else (block_name, number, transformer_index)] = patch
    replace[name] = table
    to["patches_replace"] = replace
    return {**model_options, "transformer_options": to}


def set_model_options_post_cfg_function(model_options: dict, post_cfg_function,
                                        disable_cfg1_optimization: bool = False) -> dict:
    out = {**model_options, "sampler_post_cfg_function":
           list(model_options.get("sampler_post_cfg_function", [])) + [post_cfg_function]}
    if disable_cfg1_optimization:
        out["disable_cfg1_optimization"] = True
    return out


def set_model_options_pre_cfg_function(model_options: dict, pre_cfg_function,
                                       disable_cfg1_optimization: bool = False) -> dict:
    out = {**model_options, "sampler_pre_cfg_function":
           list(model_options.get("sampler_pre_cfg_function", [])) + [pre_cfg_function]}
    if disable_cfg1_optimization:
        out["disable_cfg1_optimization"] = True
    return out


_missing = unsupported(__name__)


def __getattr__(name: str):
    if name == "ModelPatcher":
        return service().ModelPatcher
    return _missing(name)
