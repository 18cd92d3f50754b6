"""ComfyUI's `comfy_api.latest.io` (the V3 node contract), with ComfyUI 0.8's names and semantics.

A V3 node is a class: `define_schema()` returns a Schema (node_id, inputs, outputs, hidden, flags)
and the classmethod `execute(**inputs)` returns a NodeOutput. As in ComfyUI, each ComfyNode also
answers the V1 contract (INPUT_TYPES, RETURN_TYPES, FUNCTION ...) from its schema, so one adapter
(comfy_compat.v1) turns both kinds into nodegraph nodes; hidden values reach execute as `cls.hidden`.
"""
from __future__ import annotations

import copy
import inspect
from enum import Enum
from typing import Any


class FolderType(str, Enum):
    input = "input"
    output = "output"
    temp = "temp"


class UploadType(str, Enum):
    image = "image_upload"
    audio = "audio_upload"
    video = "video_upload"
    model = "file_upload"


class NumberDisplay(str, Enum):
    number = "number"
    slider = "slider"


def _pruned(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}  # as ComfyUI's prune_dict: False stays


# --- inputs and outputs -------------------------------------------------------------------------
class Input:
    Parent: Any = None

    def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                 extra_dict=None, raw_link: bool = None) -> None:
        self.id, self.display_name, self.optional, self.tooltip = id, display_name, optional, tooltip
        self.lazy, self.rawLink = lazy, raw_link
        self.extra_dict = extra_dict or {}

    @property
    def io_type(self) -> str:
        return self.Parent.io_type

    def as_dict(self) -> dict:
        return _pruned({"display_name": self.display_name, "optional": self.optional, "tooltip": self.tooltip,
                        "lazy": self.lazy, "rawLink": self.rawLink}) | _pruned(self.extra_dict)

    def get_io_type(self) -> str:
        return self.io_type


class WidgetInput(Input):
    def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                 default: Any = None, socketless: bool = None, widget_type: str = None, force_input: bool = None,
                 extra_dict=None, raw_link: bool = None) -> None:
        super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link)
        self.default, self.socketless, self.widget_type, self.force_input = default, socketless, widget_type, force_input

    def as_dict(self) -> dict:
        # a default of False or 0 is a value, not an absence
        own = {k: v for k, v in {"default": self.default}.items() if v is not None}
        return super().as_dict() | own | _pruned({"socketless": self.socketless, "widgetType": self.widget_type,
                                                  "forceInput": self.force_input})

    def get_io_type(self) -> str:
        return self.widget_type or super().get_io_type()


class Output:
    Parent: Any = None

    def __init__(self, id: str = None, display_name: str = None, tooltip: str = None, is_output_list=False) -> None:
        self.id, self.display_name, self.tooltip, self.is_output_list = id, display_name, tooltip, is_output_list

    @property
    def io_type(self) -> str:
        return self.Parent.io_type

    def get_io_type(self) -> str:
        return self.io_type


class ComfyTypeI:
    io_type: str = None
    Input = Input


class ComfyTypeIO(ComfyTypeI):
    Output = Output


def comfytype(io_type: str, **kwargs):
    """Bind `io_type` to a type class and give it its own Input / Output classes that know it."""
    def decorator(cls):
        cls.io_type = io_type
        for part in ("Input", "Output"):
            base = getattr(cls, part, None)
            if base is not None:
                setattr(cls, part, type(base.__name__, (base,), {"Parent": cls, "__module__": cls.__module__}))
        return cls
    return decorator


def Custom(io_type: str) -> type:
    """A type of the pack's own (a socket type nodegraph accepts by name)."""
    return comfytype(io_type)(type(io_type, (ComfyTypeIO,), {}))


@comfytype("BOOLEAN")
class Boolean(ComfyTypeIO):
    class Input(WidgetInput):
        def __init__(self, id, display_name=None, optional=False, tooltip=None, lazy=None, default=None,
                     label_on=None, label_off=None, socketless=None, force_input=None, extra_dict=None, raw_link=None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input,
                             extra_dict, raw_link)
            self.label_on, self.label_off = label_on, label_off

        def as_dict(self):
            return super().as_dict() | _pruned({"label_on": self.label_on, "label_off": self.label_off})


@comfytype("INT")
class Int(ComfyTypeIO):
    class Input(WidgetInput):
        def __init__(self, id, display_name=None, optional=False, tooltip=None, lazy=None, default=None, min=None,
                     max=None, step=None, control_after_generate=None, display_mode=None, socketless=None,
                     force_input=None, extra_dict=None, raw_link=None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input,
                             extra_dict, raw_link)
            self.min, self.max, self.step = min, max, step
            self.control_after_generate, self.display_mode = control_after_generate, display_mode

        def as_dict(self):
            return super().as_dict() | {k: v for k, v in {
                "min": self.min, "max": self.max, "step": self.step,
                "control_after_generate": self.control_after_generate or None,
                "display": self.display_mode.value if self.display_mode else None}.items() if v is not None}


@comfytype("FLOAT")
class Float(ComfyTypeIO):
    class Input(WidgetInput):
        def __init__(self, id, display_name=None, optional=False, tooltip=None, lazy=None, default=None, min=None,
                     max=None, step=None, round=None, display_mode=None, socketless=None, force_input=None,
                     extra_dict=None, raw_link=None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input,
                             extra_dict, raw_link)
            self.min, self.max, self.step, self.round, self.display_mode = min, max, step, round, display_mode

        def as_dict(self):
            return super().as_dict() | {k: v for k, v in {
                "min": self.min, "max": self.max, "step": self.step, "round": self.round,
                "display": self.display_mode.value if self.display_mode else None}.items() if v is not None}


@comfytype("STRING")
class String(ComfyTypeIO):
    class Input(WidgetInput):
        def __init__(self, id, display_name=None, optional=False, tooltip=None, lazy=None, multiline=False,
                     placeholder=None, default=None, dynamic_prompts=None, socketless=None, force_input=None,
                     extra_dict=None, raw_link=None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input,
                             extra_dict, raw_link)
            self.multiline, self.placeholder, self.dynamic_prompts = multiline, placeholder, dynamic_prompts

        def as_dict(self):
            return super().as_dict() | _pruned({"multiline": self.multiline, "placeholder": self.placeholder,
                                                "dynamicPrompts": self.dynamic_prompts})


@comfytype("COMBO")
class Combo(ComfyTypeIO):
    class Input(WidgetInput):
        def __init__(self, id, options=None, display_name=None, optional=False, tooltip=None, lazy=None,
                     default=None, control_after_generate=None, upload=None, image_folder=None, remote=None,
                     socketless=None, extra_dict=None, raw_link=None):
            if isinstance(options, type) and issubclass(options, Enum):
                options = [v.value for v in options]
            if isinstance(default, Enum):
                default = default.value
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, None,
                             extra_dict, raw_link)
            self.options, self.control_after_generate, self.upload = options, control_after_generate, upload
            self.image_folder = image_folder

        def as_dict(self):
            return super().as_dict() | _pruned({
                "multiselect": False,  # ComfyUI's single-choice Combo says so (MultiCombo says True)
                "options": self.options, "control_after_generate": self.control_after_generate,
                **({self.upload.value: True} if self.upload is not None else {}),
                "image_folder": self.image_folder.value if self.image_folder else None})

    class Output(Output):
        def __init__(self, id=None, display_name=None, options=None, tooltip=None, is_output_list=False):
            super().__init__(id, display_name, tooltip, is_output_list)
            self.options = options or []


# the plain socket types (ComfyUI 0.8's io_type strings)
_PLAIN = {"Image": "IMAGE", "Mask": "MASK", "Latent": "LATENT", "Conditioning": "CONDITIONING",
          "Sampler": "SAMPLER", "Sigmas": "SIGMAS", "Noise": "NOISE", "Guider": "GUIDER", "Clip": "CLIP",
          "ControlNet": "CONTROL_NET", "Vae": "VAE", "Model": "MODEL", "ClipVision": "CLIP_VISION",
          "ClipVisionOutput": "CLIP_VISION_OUTPUT", "StyleModel": "STYLE_MODEL", "Gligen": "GLIGEN",
          "UpscaleModel": "UPSCALE_MODEL", "Audio": "AUDIO", "Video": "VIDEO", "Hooks": "HOOKS",
          "LatentOperation": "LATENT_OPERATION", "BBOX": "BBOX", "SEGS": "SEGS", "AnyType": "*",
          "Point": "POINT", "FaceAnalysis": "FACE_ANALYSIS", "Photomaker": "PHOTOMAKER", "Tracks": "TRACKS"}
for _name, _io_type in _PLAIN.items():
    globals()[_name] = comfytype(_io_type)(type(_name, (ComfyTypeIO,), {"__module__": __name__}))


# --- dynamic inputs (ComfyUI 0.8's MultiType, MatchType, Autogrow, DynamicCombo) ----------------------
# /object_info shows them as ComfyUI declares them (COMFY_*_V3 types with their templates); the engine
# sees plain sockets instead, built by engine_input_types() / engine_return_types() below, so the one
# place that decides what connects stays SocketType.accepts.
def _input_dict_v1(inputs: list) -> dict:
    """As ComfyUI's create_input_dict_v1: {"required": {id: (type, options)}, "optional": ...}."""
    declared: dict = {"required": {}}
    for inp in inputs:
        options = inp.as_dict()
        options.pop("optional", None)
        declared.setdefault("optional" if inp.optional else "required", {})[inp.id] = (inp.get_io_type(), options)
    return declared


class DynamicInput(Input):
    """An input that stands for a set of inputs chosen by what the prompt holds."""


@comfytype("COMFY_MULTITYPED_V3")
class MultiType:
    class Input(Input):
        """One socket that takes any of `types`; with an Input as `id`, that input's widget and options."""

        def __init__(self, id, types: list, display_name=None, optional=False, tooltip=None, lazy=None,
                     extra_dict=None, raw_link=None):
            self.input_override = None
            if isinstance(id, Input):
                self.input_override = copy.copy(id)
                optional = True if id.optional is True else optional
                tooltip = id.tooltip if id.tooltip is not None else tooltip
                display_name = id.display_name if id.display_name is not None else display_name
                lazy = id.lazy if id.lazy is not None else lazy
                if isinstance(self.input_override, WidgetInput):
                    self.input_override.widget_type = self.input_override.get_io_type()
                id = id.id
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link)
            self._io_types = list(types)

        def get_io_type(self) -> str:
            names = [t.io_type for t in self._io_types]
            if self.input_override is not None:
                names.insert(0, self.input_override.get_io_type())
            return ",".join(dict.fromkeys(names))

        def as_dict(self) -> dict:
            own = super().as_dict()
            return self.input_override.as_dict() | own if self.input_override is not None else own


@comfytype("COMFY_MATCHTYPE_V3")
class MatchType(ComfyTypeIO):
    class Template:
        """A type variable: inputs and outputs sharing `template_id` carry the same type, one of allowed_types."""

        def __init__(self, template_id: str, allowed_types=None) -> None:
            allowed = AnyType if allowed_types is None else allowed_types  # noqa: F821 (made by _PLAIN)
            self.template_id = template_id
            self.allowed_types = list(allowed) if isinstance(allowed, (list, tuple)) else [allowed]

        def as_dict(self) -> dict:
            return {"template_id": self.template_id,
                    "allowed_types": ",".join(t.io_type for t in self.allowed_types)}

        def engine_type(self) -> str:
            names = [t.io_type for t in self.allowed_types]
            return "*" if "*" in names else ",".join(dict.fromkeys(names))

    class Input(Input):
        def __init__(self, id, template, display_name=None, optional=False, tooltip=None, lazy=None,
                     extra_dict=None, raw_link=None):
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link)
            self.template = template

        def as_dict(self) -> dict:
            return super().as_dict() | {"template": self.template.as_dict()}

    class Output(Output):
        def __init__(self, template, id=None, display_name=None, tooltip=None, is_output_list=False):
            if not id and not display_name:
                display_name = "MATCHTYPE"
            super().__init__(id, display_name, tooltip, is_output_list)
            self.template = template


@comfytype("COMFY_AUTOGROW_V3")
class Autogrow(ComfyTypeI):
    _MaxNames = 100

    class _Template:
        def __init__(self, input: Input) -> None:
            if isinstance(input, DynamicInput):
                raise TypeError("an Autogrow template cannot be a dynamic input")
            self.input = copy.copy(input)
            if isinstance(self.input, WidgetInput):
                self.input.force_input = True  # grown inputs are sockets, as in ComfyUI
            self.names: list[str] = []

        def as_dict(self) -> dict:
            return {"input": _input_dict_v1([self.input])}

    class TemplatePrefix(_Template):
        def __init__(self, input: Input, prefix: str, min: int = 1, max: int = 10) -> None:
            super().__init__(input)
            if not (min >= 0 and 1 <= max <= Autogrow._MaxNames):
                raise ValueError(f"Autogrow.TemplatePrefix needs 0 <= min and 1 <= max <= 100, got {min}, {max}")
            self.prefix, self.min, self.max = prefix, min, max
            self.names = [f"{prefix}{i}" for i in range(max)]

        def as_dict(self) -> dict:
            return super().as_dict() | {"prefix": self.prefix, "min": self.min, "max": self.max}

    class TemplateNames(_Template):
        def __init__(self, input: Input, names: list, min: int = 1) -> None:
            super().__init__(input)
            if min < 0:
                raise ValueError(f"Autogrow.TemplateNames needs min >= 0, got {min}")
            self.names, self.min = list(names)[:Autogrow._MaxNames], min

        def as_dict(self) -> dict:
            return super().as_dict() | {"names": self.names, "min": self.min}

    class Input(DynamicInput):
        def __init__(self, id, template, display_name=None, optional=False, tooltip=None, lazy=None,
                     extra_dict=None) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict)
            self.template = template

        def as_dict(self) -> dict:
            return super().as_dict() | {"template": self.template.as_dict()}


@comfytype("COMFY_DYNAMICCOMBO_V3")
class DynamicCombo(ComfyTypeI):
    class Option:
        def __init__(self, key: str, inputs: list) -> None:
            self.key, self.inputs = key, list(inputs)

        def as_dict(self) -> dict:
            return {"key": self.key, "inputs": _input_dict_v1(self.inputs)}

    class Input(DynamicInput):
        def __init__(self, id, options: list, display_name=None, optional=False, tooltip=None, lazy=None,
                     extra_dict=None) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict)
            self.options = list(options)

        def as_dict(self) -> dict:
            return super().as_dict() | {"options": [o.as_dict() for o in self.options]}


def engine_input_types(inputs: list, prefix: str = "") -> dict:
    """The inputs as the engine's sockets, in ComfyUI's prompt naming: a grown input is
    "<autogrow id>.<name>" (required for the first `min`), a DynamicCombo is a combo of its keys and
    each option's inputs are "<combo id>.<input id>" (optional here; the chosen option's required ones
    are checked when the node runs), a MatchType input takes its allowed types."""
    declared: dict = {"required": {}, "optional": {}}

    def put(inp, key: str, kind, optional: bool) -> None:
        options = {k: v for k, v in inp.as_dict().items() if k not in ("optional", "template", "options")}
        declared["optional" if optional else "required"][key] = (kind, options)

    for inp in inputs:
        key = prefix + inp.id
        if isinstance(inp, Autogrow.Input):
            grown_from = inp.template.input
            for i, name in enumerate(inp.template.names):
                sub = engine_input_types([grown_from], f"{key}.")
                entry = next(iter((sub["required"] | sub["optional"]).values()))
                declared["required" if i < inp.template.min else "optional"][f"{key}.{name}"] = entry
        elif isinstance(inp, DynamicCombo.Input):
            put(inp, key, [o.key for o in inp.options], inp.optional)
            for option in inp.options:
                sub = engine_input_types(option.inputs, f"{key}.")
                for entry_key, entry in (sub["required"] | sub["optional"]).items():
                    declared["optional"].setdefault(entry_key, entry)
        elif isinstance(inp, MatchType.Input):
            put(inp, key, inp.template.engine_type(), inp.optional)
        else:
            options = inp.as_dict()
            options.pop("optional", None)
            declared["optional" if inp.optional else "required"][key] = (inp.get_io_type(), options)
    return declared


def engine_return_types(outputs: list) -> tuple:
    return tuple(o.template.engine_type() if isinstance(o, MatchType.Output) else o.get_io_type() for o in outputs)


def engine_type_from(inputs: list, outputs: list) -> tuple:
    """Per output, the MatchType inputs of its template (the engine's Output.type_from): the output
    has the type of what is linked to them, as ComfyUI's frontend resolves it."""
    return tuple(tuple(i.id for i in inputs if isinstance(i, MatchType.Input)
                       and i.template.template_id == o.template.template_id)
                 if isinstance(o, MatchType.Output) else () for o in outputs)


def nested_values(node_id: str, inputs: list, values: dict, prefix: str = "") -> dict:
    """The prompt's flat "a.b" values as execute receives them (ComfyUI's build_nested_inputs): an
    Autogrow as {name: value} of the grown inputs given, a DynamicCombo as {combo id: key, input id:
    value} of the chosen option; the other options' values are dropped."""
    out: dict = {}
    for inp in inputs:
        key = prefix + inp.id
        if isinstance(inp, Autogrow.Input):
            grown = {name: values.pop(f"{key}.{name}") for name in inp.template.names if f"{key}.{name}" in values}
            if grown:
                out[inp.id] = grown
        elif isinstance(inp, DynamicCombo.Input):
            if key not in values:
                continue
            choice = values.pop(key)
            option = next((o for o in inp.options if o.key == choice), None)
            if option is None:
                raise ValueError(f"node {node_id}: input {key!r} is {choice!r}, not one of "
                                 f"{[o.key for o in inp.options]}")
            chosen = nested_values(node_id, option.inputs, values, f"{key}.")
            missing = [f"{key}.{i.id}" for i in option.inputs
                       if not i.optional and not isinstance(i, DynamicInput) and i.id not in chosen]
            if missing:
                raise ValueError(f"node {node_id}: option {choice!r} of {key!r} needs input {missing[0]!r}")
            for other in [k for k in values if k.startswith(f"{key}.")]:
                values.pop(other)
            out[inp.id] = {inp.id: choice, **chosen}
        elif key in values:
            out[inp.id] = values.pop(key)
    return out


# --- hidden values ------------------------------------------------------------------------------
class Hidden(str, Enum):
    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"
    auth_token_comfy_org = "AUTH_TOKEN_COMFY_ORG"
    api_key_comfy_org = "API_KEY_COMFY_ORG"


class HiddenHolder:
    """`cls.hidden` while execute runs: the hidden values the schema asked for, None for the rest."""

    def __init__(self, values: dict) -> None:
        self.__dict__.update({h.name: values.get(h.name) for h in Hidden})

    def __getattr__(self, key: str):
        return None


# --- schema, node, output -----------------------------------------------------------------------
class Schema:
    def __init__(self, node_id: str, display_name: str = None, category: str = "sd", inputs: list = None,
                 outputs: list = None, hidden: list = None, description: str = "", is_input_list: bool = False,
                 is_output_node: bool = False, is_deprecated: bool = False, is_experimental: bool = False,
                 is_api_node: bool = False, not_idempotent: bool = False, enable_expand: bool = False,
                 search_aliases: list = None, **kwargs) -> None:
        self.node_id, self.display_name, self.category = node_id, display_name, category
        self.inputs, self.outputs, self.hidden = list(inputs or []), list(outputs or []), list(hidden or [])
        self.description, self.is_input_list, self.is_output_node = description, is_input_list, is_output_node
        self.is_deprecated, self.is_experimental, self.is_api_node = is_deprecated, is_experimental, is_api_node
        self.not_idempotent, self.enable_expand, self.search_aliases = not_idempotent, enable_expand, search_aliases

    def validate(self) -> None:
        for kind, ids in (("Input", [i.id for i in self.inputs]), ("Output", [o.id for o in self.outputs if o.id])):
            repeated = sorted({i for i in ids if ids.count(i) > 1})
            if repeated:
                raise ValueError(f"{kind} ids must be unique, but {repeated} are not.")

    def finalize(self) -> None:
        """As ComfyUI: an output node gets PROMPT and EXTRA_PNGINFO; outputs without ids get `_<i>_<type>_`."""
        if self.is_output_node:
            for needed in (Hidden.prompt, Hidden.extra_pnginfo):
                if needed not in self.hidden:
                    self.hidden.append(needed)
        for i, output in enumerate(self.outputs):
            if output.id is None:
                output.id = f"_{i}_{output.io_type}_"


class _UIOutput:
    def as_dict(self) -> dict:
        raise NotImplementedError


class NodeOutput:
    def __init__(self, *args: Any, ui=None, expand: dict = None, block_execution: str = None) -> None:
        self.args, self.ui, self.expand, self.block_execution = args, ui, expand, block_execution

    @property
    def result(self):
        return self.args if self.args else None

    @classmethod
    def from_dict(cls, data: dict) -> "NodeOutput":
        return cls(*(data.get("result") or ()), ui=data.get("ui"), expand=data.get("expand"))

    def __getitem__(self, index):
        return self.args[index]


class _V1Surface(type):
    """ComfyNode classes answer the V1 contract from their schema (as ComfyUI's classproperties do)."""

    @property
    def RETURN_TYPES(cls):
        return tuple(o.get_io_type() for o in cls.GET_SCHEMA().outputs)

    @property
    def ENGINE_RETURN_TYPES(cls):
        return engine_return_types(cls.GET_SCHEMA().outputs)

    @property
    def ENGINE_TYPE_FROM(cls):
        schema = cls.GET_SCHEMA()
        return engine_type_from(schema.inputs, schema.outputs)

    @property
    def RETURN_NAMES(cls):
        return tuple(o.display_name or o.id for o in cls.GET_SCHEMA().outputs)

    @property
    def OUTPUT_IS_LIST(cls):
        return tuple(bool(o.is_output_list) for o in cls.GET_SCHEMA().outputs)

    @property
    def OUTPUT_TOOLTIPS(cls):
        return tuple(o.tooltip for o in cls.GET_SCHEMA().outputs)

    @property
    def INPUT_IS_LIST(cls):
        return cls.GET_SCHEMA().is_input_list

    @property
    def OUTPUT_NODE(cls):
        return cls.GET_SCHEMA().is_output_node

    @property
    def CATEGORY(cls):
        return cls.GET_SCHEMA().category

    @property
    def DESCRIPTION(cls):
        return cls.GET_SCHEMA().description

    @property
    def DEPRECATED(cls):
        return cls.GET_SCHEMA().is_deprecated

    @property
    def EXPERIMENTAL(cls):
        return cls.GET_SCHEMA().is_experimental

    @property
    def NOT_IDEMPOTENT(cls):
        return cls.GET_SCHEMA().not_idempotent

    @property
    def SEARCH_ALIASES(cls):
        return cls.GET_SCHEMA().search_aliases or []


class ComfyNode(metaclass=_V1Surface):
    hidden: HiddenHolder = HiddenHolder({})
    FUNCTION = "EXECUTE_NORMALIZED"

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.SCHEMA = None
        # V1 names for the optional hooks the class defines itself (ComfyUI calls them only then)
        if _overrides(cls, "validate_inputs"):
            cls.VALIDATE_INPUTS = staticmethod(cls.validate_inputs)
        if _overrides(cls, "fingerprint_inputs"):
            cls.IS_CHANGED = staticmethod(cls.fingerprint_inputs)

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError(f"{cls.__name__} does not define define_schema")

    @classmethod
    def execute(cls, **kwargs) -> NodeOutput:
        raise NotImplementedError(f"{cls.__name__} does not define execute")

    @classmethod
    def validate_inputs(cls, **kwargs):
        raise NotImplementedError

    @classmethod
    def fingerprint_inputs(cls, **kwargs):
        raise NotImplementedError

    @classmethod
    def check_lazy_status(cls, **kwargs) -> list[str]:
        """ComfyUI's default: every input not evaluated yet."""
        return [name for name, value in kwargs.items() if value is None]

    @classmethod
    def GET_SCHEMA(cls) -> Schema:
        if cls.__dict__.get("SCHEMA") is None:
            schema = cls.define_schema()
            if not isinstance(schema, Schema):
                raise TypeError(f"{cls.__name__}.define_schema() must return an io.Schema, got {type(schema).__name__}")
            schema.validate()
            schema.finalize()
            cls.SCHEMA = schema
        return cls.__dict__["SCHEMA"]

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        schema = cls.GET_SCHEMA()
        declared: dict = {"required": {}}
        for inp in schema.inputs:
            options = inp.as_dict()
            options.pop("optional", None)
            declared.setdefault("optional" if inp.optional else "required", {})[inp.id] = (inp.get_io_type(), options)
        if schema.hidden:  # as ComfyUI's get_v1_info: {name: (kind,)}
            declared["hidden"] = {Hidden(h).name: (Hidden(h).value,) for h in schema.hidden}
        return declared

    @classmethod
    def ENGINE_INPUT_TYPES(cls) -> dict:
        """INPUT_TYPES as the engine's sockets (dynamic inputs spelled out; see engine_input_types)."""
        schema = cls.GET_SCHEMA()
        declared = engine_input_types(schema.inputs)
        if schema.hidden:
            declared["hidden"] = {Hidden(h).name: (Hidden(h).value,) for h in schema.hidden}
        return declared

    @classmethod
    def EXECUTE_NORMALIZED(cls, **kwargs):
        hidden = {h.name: kwargs.pop(h.name) for h in Hidden if h.name in kwargs}
        schema = cls.GET_SCHEMA()
        if any(isinstance(i, DynamicInput) for i in schema.inputs):
            nested = nested_values(schema.node_id, schema.inputs, kwargs)
            kwargs = {**kwargs, **nested}
        clone = type(cls.__name__, (cls,), {"hidden": HiddenHolder(hidden), "SCHEMA": cls.GET_SCHEMA()})
        result = clone.execute(**kwargs)
        if inspect.isawaitable(result):
            return _normalized_async(cls, result)
        return _as_v1_result(cls, result)


async def _normalized_async(cls, awaitable):
    return _as_v1_result(cls, await awaitable)


def _as_v1_result(cls, result) -> dict:
    """execute's NodeOutput (or tuple, dict, None) as the V1 {"result", "ui", "expand"} dict."""
    if result is None:
        result = NodeOutput()
    elif isinstance(result, tuple):
        result = NodeOutput(*result)
    elif isinstance(result, dict):
        result = NodeOutput.from_dict(result)
    elif not isinstance(result, NodeOutput):
        raise TypeError(f"{cls.__name__}.execute returned {type(result).__name__}; expected io.NodeOutput")
    if result.expand is not None and not cls.GET_SCHEMA().enable_expand:
        raise ValueError(f"Node {cls.__name__} is not expandable, but expand included in NodeOutput; "
                         "developer should set enable_expand=True on node's Schema to allow this.")
    out: dict = {}
    if result.args:
        out["result"] = result.args
    if result.block_execution is not None:  # as ComfyUI: every output blocks what uses it
        from ...expansion import ExecutionBlocker

        out["result"] = ExecutionBlocker(result.block_execution)
    if result.ui is not None:
        ui = result.ui.as_dict() if isinstance(result.ui, _UIOutput) else dict(result.ui)
        out["ui"] = {k: list(v) if isinstance(v, tuple) else v for k, v in ui.items()}
    if result.expand is not None:
        out["expand"] = result.expand
    return out


def _overrides(cls, name: str) -> bool:
    return any(name in klass.__dict__ for klass in cls.__mro__ if klass is not ComfyNode and issubclass(klass, ComfyNode))
