"""The names packs import from ComfyUI's `nodes` module.

nodegraph's own built-in packs live in a package that is also called `nodes`, so this module is not
installed under that name: its names are grafted onto our `nodes` package as a module-level
__getattr__ (see install.py), and `import nodes` / `from nodes import MAX_RESOLUTION` give our
package, which answers ComfyUI's names as well. When our package is not importable, this module
itself becomes `nodes`.

NODE_CLASS_MAPPINGS holds every node the registry knows: a pack's node as its own ComfyUI class,
ours as a V1-looking class (INPUT_TYPES, RETURN_TYPES, FUNCTION under ComfyUI's method name) whose
method runs our node inside the calling node's context, e.g. `nodes.ImageScale().upscale(...)`.
"""
from __future__ import annotations

from collections.abc import MutableMapping

from . import model_surface, runtime
from .surface import unsupported

MAX_RESOLUTION = 16384

# ComfyUI 0.8's FUNCTION names of its core nodes (nodes.py), so packs can call them by name
CORE_FUNCTIONS = {
    "KSampler": "sample", "KSamplerAdvanced": "sample", "CheckpointLoaderSimple": "load_checkpoint",
    "CheckpointLoader": "load_checkpoint", "CLIPTextEncode": "encode", "CLIPSetLastLayer": "set_last_layer",
    "VAEDecode": "decode", "VAEEncode": "encode", "VAEEncodeForInpaint": "encode", "VAELoader": "load_vae",
    "VAEDecodeTiled": "decode", "VAEEncodeTiled": "encode", "EmptyLatentImage": "generate",
    "LatentUpscale": "upscale", "LatentUpscaleBy": "upscale", "LatentFromBatch": "frombatch",
    "RepeatLatentBatch": "repeat", "SaveImage": "save_images", "PreviewImage": "save_images",
    "LoadImage": "load_image", "LoadImageMask": "load_image", "LoadImageOutput": "load_image",
    "ImageScale": "upscale", "ImageScaleBy": "upscale", "ImageInvert": "invert", "ImageBatch": "batch",
    "ImagePadForOutpaint": "expand_image", "EmptyImage": "generate", "ConditioningAverage": "addWeighted",
    "ConditioningCombine": "combine", "ConditioningConcat": "concat", "ConditioningSetArea": "append",
    "ConditioningSetAreaPercentage": "append", "ConditioningSetAreaStrength": "append",
    "ConditioningSetMask": "append", "SetLatentNoiseMask": "set_mask", "LatentComposite": "composite",
    "LatentBlend": "blend", "LatentRotate": "rotate", "LatentFlip": "flip", "LatentCrop": "crop",
    "LoraLoader": "load_lora", "LoraLoaderModelOnly": "load_lora_model_only", "CLIPLoader": "load_clip",
    "UNETLoader": "load_unet", "DualCLIPLoader": "load_clip", "ControlNetApply": "apply_controlnet",
    "ControlNetApplyAdvanced": "apply_controlnet", "ControlNetLoader": "load_controlnet",
    "DiffControlNetLoader": "load_controlnet", "InpaintModelConditioning": "encode", "LoadLatent": "load",
    "SaveLatent": "save", "ConditioningZeroOut": "zero_out", "ConditioningSetTimestepRange": "set_range",
}


def comfy_input_entry(inp, env) -> tuple:
    """Our Input as an INPUT_TYPES entry."""
    from ..node import resolve_choices

    options = {}
    if inp.has_default:
        options["default"] = inp.default
    for key in ("min", "max", "step"):
        if getattr(inp, key) is not None and inp.type.name in ("INT", "FLOAT"):
            options[key] = getattr(inp, key)
    if inp.multiline:
        options["multiline"] = True
    if inp.force_input:
        options["forceInput"] = True
    if inp.lazy:
        options["lazy"] = True
    if inp.tooltip:
        options["tooltip"] = inp.tooltip
    if inp.type.name == "COMBO":
        return (resolve_choices(inp, env), options)
    return (inp.type.name, options)


# class attributes ComfyUI's core scaling nodes carry (ImageScale, ImageScaleBy, LatentUpscale, ...): the
# choices of one of their inputs
CHOICE_ATTRIBUTES = {"upscale_methods": "upscale_method", "crop_methods": "crop"}


def core_class(spec) -> type:
    """A ComfyUI-looking class for one of our nodes."""
    from ..executor import call_node
    from ..node import Context

    function = CORE_FUNCTIONS.get(spec.name, "execute")

    def INPUT_TYPES(cls):  # noqa: N802 - ComfyUI's name
        env = runtime.env()
        out = {"required": {}, "optional": {}}
        for inp in spec.inputs:
            out["optional" if inp.optional else "required"][inp.name] = comfy_input_entry(inp, env)
        return out

    def execute(self, *args, **kwargs):
        """Positional arguments follow the declared input order (ComfyUI subclasses call
        e.g. self.save_images(images, prefix, prompt, extra_pnginfo)); extra ones are ComfyUI's hidden
        inputs, which our nodes take from their context instead."""
        kwargs = {**dict(zip([i.name for i in spec.inputs], args)), **kwargs}
        kwargs = {k: model_surface.unwrap(v) for k, v in kwargs.items()}  # a pack's ModelPatcher -> our handle
        current = runtime.running()
        ctx = current.ctx if current is not None else Context(runtime.env(), node_type=spec.name)
        values = {}
        for inp in spec.inputs:
            if inp.name in kwargs:
                values[inp.name] = [kwargs[inp.name]]
            elif inp.has_default and inp.is_widget:
                values[inp.name] = [inp.default]
        result = call_node(spec, spec.cls(), ctx, values)
        return tuple(model_surface.wrap(items if out.is_list else items[0], ctx)
                     for out, items in zip(spec.outputs, result))

    attrs = {"INPUT_TYPES": classmethod(INPUT_TYPES), "RETURN_TYPES": tuple(o.type.name for o in spec.outputs),
             "RETURN_NAMES": tuple(o.name for o in spec.outputs), "FUNCTION": function,
             "CATEGORY": spec.category, "OUTPUT_NODE": spec.output_node, "DESCRIPTION": spec.description,
             "execute": execute, function: execute, "__module__": "nodes",
             "__doc__": f"nodegraph's {spec.name}, seen as a ComfyUI class."}
    for attribute, input_name in CHOICE_ATTRIBUTES.items():  # ImageScale.upscale_methods ... (rgthree reads them)
        inp = spec.input_by_name.get(input_name)
        if inp is not None and inp.type.name == "COMBO" and isinstance(inp.choices, list):
            attrs[attribute] = list(inp.choices)
    if any(o.is_list for o in spec.outputs):  # as ComfyUI's core classes: absent unless a list comes out,
        attrs["OUTPUT_IS_LIST"] = tuple(o.is_list for o in spec.outputs)  # so subclasses may add outputs
    return type(spec.name, (), attrs)


class NodeClassMappings(MutableMapping):
    """ComfyUI's NODE_CLASS_MAPPINGS over the live registry (packs' own additions kept aside)."""

    def __init__(self) -> None:
        self._added: dict = {}
        self._made: dict = {}

    @staticmethod
    def _registry():
        return runtime.current_registry()

    def __getitem__(self, name):
        if name in self._added:
            return self._added[name]
        registry = self._registry()
        spec = registry.get(name) if registry is not None else None
        if spec is None:
            raise KeyError(name)
        comfy = getattr(spec.cls, "comfy_class", None)
        if comfy is not None:
            return comfy
        if self._made.get(name, (None,))[0] is not spec:
            self._made[name] = (spec, core_class(spec))
        return self._made[name][1]

    def __setitem__(self, name, cls) -> None:
        self._added[name] = cls

    def __delitem__(self, name) -> None:
        del self._added[name]

    def __iter__(self):
        registry = self._registry()
        names = list(registry.specs) if registry is not None else []
        return iter(dict.fromkeys([*names, *self._added]))

    def __len__(self) -> int:
        return sum(1 for _ in self)


class DisplayNameMappings(MutableMapping):
    def __init__(self, classes: NodeClassMappings) -> None:
        self._classes = classes
        self._added: dict = {}

    def __getitem__(self, name):
        if name in self._added:
            return self._added[name]
        registry = self._classes._registry()
        spec = registry.get(name) if registry is not None else None
        if spec is None:
            raise KeyError(name)
        return spec.display_name

    def __setitem__(self, name, value) -> None:
        self._added[name] = value

    def __delitem__(self, name) -> None:
        del self._added[name]

    def __iter__(self):
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)


NODE_CLASS_MAPPINGS = NodeClassMappings()
NODE_DISPLAY_NAME_MAPPINGS = DisplayNameMappings(NODE_CLASS_MAPPINGS)
EXTENSION_WEB_DIRS: dict = {}  # filled by the loader with each pack's web folder
LOADED_MODULE_DIRS: dict = {}


def before_node_execution() -> None:
    """ComfyUI calls this before each node: raise if the job was interrupted."""
    current = runtime.running()
    if current is not None:
        current.ctx.check_interrupt()


def interrupt_processing(value: bool = True) -> None:
    current = runtime.running()
    if current is not None and value:
        current.ctx.control.interrupt()


def common_ksampler(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent, denoise=1.0,
                    disable_noise=False, start_step=None, last_step=None, force_full_denoise=False):
    """ComfyUI's nodes.common_ksampler: (LATENT,) sampled exactly as our KSampler / KSamplerAdvanced."""
    return model_surface.service().sampling.common_ksampler(
        model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent, denoise=denoise,
        disable_noise=disable_noise, start_step=start_step, last_step=last_step, force_full_denoise=force_full_denoise)


EXPORTED = ("common_ksampler", "MAX_RESOLUTION", "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "EXTENSION_WEB_DIRS",
            "LOADED_MODULE_DIRS", "before_node_execution", "interrupt_processing")
_missing = unsupported("nodes")


def lookup(name: str):
    """The graft on our `nodes` package: ComfyUI's names, then the core node classes by name."""
    if name in EXPORTED:
        return globals()[name]
    if not name.startswith("_"):
        try:
            return NODE_CLASS_MAPPINGS[name]
        except KeyError:
            pass
    return _missing(name)


__getattr__ = lookup
