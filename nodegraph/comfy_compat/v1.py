"""ComfyUI's V1 node contract (INPUT_TYPES, RETURN_TYPES, FUNCTION ...) as nodegraph NodeSpecs.

`adapt(name, comfy_class, pack)` makes, once at load time, a nodegraph node class that wraps the
ComfyUI class; the executor only ever sees NodeSpecs. Semantics follow ComfyUI 0.8's execution.py:

- INPUT_TYPES: required / optional inputs in declared order; `(type, options)` where type is a name
  ("IMAGE", a pack's own "BBOX", "*", "IMAGE,MASK"), a list of choices, or "COMBO" with
  options["options"]. Options honoured: default, min, max, step, multiline, forceInput, lazy,
  rawLink, tooltip, control_after_generate, display, image_upload; the others (round,
  dynamicPrompts, defaultInput ...) are the frontend's and reach it through /object_info, which
  shows INPUT_TYPES as the pack declared it. Choice lists are read again from INPUT_TYPES whenever
  they are listed (model and input-file lists change). hidden: PROMPT, EXTRA_PNGINFO, UNIQUE_ID,
  DYNPROMPT, AUTH_TOKEN_COMFY_ORG, API_KEY_COMFY_ORG are filled when the node runs.
- INPUT_IS_LIST: every input arrives as a list (one call); otherwise list inputs make the node run
  once per item, repeating the last item of shorter lists. OUTPUT_IS_LIST outputs are concatenated.
- IS_CHANGED: called with the literal inputs (links are None); its value joins the cache key, NaN
  or an exception means "always run".
- VALIDATE_INPUTS: called at validation with the literal inputs its signature names (links are
  None); inputs it names (all of them with **kwargs) skip the min/max and choice checks. With an
  `input_types` argument it also receives the linked inputs' types and link type checks are off;
  that call happens when the node runs, as nodegraph's validation hook sees literals only.
- check_lazy_status: asked which lazy inputs to compute, with None for those not computed yet.
- Results: a tuple (or list), or {"ui": {...}, "result": (...)}; ui entries go to the node's
  executed event. {"expand": graph, "result": (...)} (a GraphBuilder graph, links [id, index] in the
  result) becomes a nodegraph Expansion; before each call GraphBuilder's default prefix is set to
  "<node id>.<call index>.0." as ComfyUI sets it. An ExecutionBlocker (as the result or inside it)
  blocks what uses it. A node with a hidden UNIQUE_ID (or NOT_IDEMPOTENT) is cached per node id, as
  ComfyUI's cache signature does.
"""
from __future__ import annotations

import asyncio
import inspect
import math
import uuid
from typing import Any

from ..expansion import ExecutionBlocker, Expansion
from ..node import MISSING, Input, Output, node
from ..types import COMBO, STRING
from . import model_surface, runtime
from .comfy_execution.graph import DynamicPrompt
from .comfy_execution.graph_utils import GraphBuilder, is_link as is_comfy_link

HIDDEN_KINDS = ("PROMPT", "EXTRA_PNGINFO", "UNIQUE_ID", "DYNPROMPT", "AUTH_TOKEN_COMFY_ORG", "API_KEY_COMFY_ORG")
WIDGET_NAMES = ("INT", "FLOAT", "STRING", "BOOLEAN")


class ComfyDeclarationError(ValueError):
    """A ComfyUI class whose declaration cannot be read; the message names the node and the part."""


# --- reading the declaration ------------------------------------------------------------------------
def _signature_args(fn) -> tuple[list[str], bool]:
    if fn is None:
        return [], False
    spec = inspect.getfullargspec(fn)
    return list(spec.args) + list(spec.kwonlyargs), spec.varkw is not None


def _entry(node_name: str, name: str, entry) -> tuple[Any, dict]:
    if isinstance(entry, str):  # a bare type name: accepted, ComfyUI's frontend reads it the same way
        return plain_type(entry), {}
    if not isinstance(entry, (tuple, list)) or not entry:
        raise ComfyDeclarationError(f"node {node_name}: input {name!r} must be declared as (type, options), "
                                    f"got {entry!r}")
    options = entry[1] if len(entry) > 1 else {}
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise ComfyDeclarationError(f"node {node_name}: options of input {name!r} must be a dict, got {options!r}")
    return plain_type(entry[0]), options


def plain_type(kind):
    """A type name as a plain str. Packs declare "*" with a str subclass whose __eq__/__ne__ always
    match (Crystools' and pythongosssss' AnyType), so comparing it with "COMBO" would be True."""
    return str.__str__(kind) if isinstance(kind, str) else kind


def _choices_of(kind, options: dict) -> list | None:
    if isinstance(kind, (list, tuple)):
        return list(kind)
    if kind == "COMBO":
        return list(options.get("options") or [])
    return None


def make_input(node_name: str, name: str, entry, *, optional: bool, is_list: bool, relaxed: bool,
               live_choices) -> tuple[Input, bool]:
    """One INPUT_TYPES entry as our Input; also whether it is a rawLink input."""
    kind, options = _entry(node_name, name, entry)
    raw_link = bool(options.get("rawLink"))
    common = dict(optional=optional, is_list=is_list, tooltip=str(options.get("tooltip") or ""),
                  lazy=bool(options.get("lazy")) or raw_link, force_input=bool(options.get("forceInput")))
    choices = _choices_of(kind, options)
    if choices is not None:
        default = options.get("default", choices[0] if choices else MISSING)
        if relaxed:  # VALIDATE_INPUTS takes over the membership check: any string goes
            return Input(name, STRING, default=default, **common), raw_link
        display = "image_upload" if options.get("image_upload") else str(options.get("display") or "")
        return Input(name, COMBO, default=default, choices=live_choices(name), display=display,
                     control_after_generate=bool(options.get("control_after_generate")), **common), raw_link
    if not isinstance(kind, str) or not kind:
        raise ComfyDeclarationError(f"node {node_name}: input {name!r} has type {kind!r}; expected a type "
                                    "name or a list of choices")
    if kind in WIDGET_NAMES:
        bounded = not relaxed and kind in ("INT", "FLOAT")
        return Input(name, kind, default=_widget_default(kind, options.get("default", MISSING)),
                     min=options.get("min") if bounded else None, max=options.get("max") if bounded else None,
                     step=options.get("step") if kind in ("INT", "FLOAT") else None,
                     multiline=bool(options.get("multiline")), display=str(options.get("display") or ""),
                     control_after_generate=bool(options.get("control_after_generate")), **common), raw_link
    widget = next((m for m in kind.split(",") if m in WIDGET_NAMES), None)
    if widget is not None and "," in kind and not relaxed:
        # a socket that also takes a literal ("FLOAT,MASK", V3's MultiType): its range holds for literals
        return Input(name, kind, default=_widget_default(widget, options.get("default", MISSING)),
                     min=options.get("min"), max=options.get("max"), step=options.get("step"), **common), raw_link
    return Input(name, kind, **common), raw_link


def make_outputs(node_name: str, cls: type) -> list[Output]:
    types = getattr(cls, "ENGINE_RETURN_TYPES", None) or getattr(cls, "RETURN_TYPES", None)
    if not isinstance(types, (tuple, list)):
        raise ComfyDeclarationError(f"node {node_name}: RETURN_TYPES must be a tuple, got {types!r}")
    names = getattr(cls, "RETURN_NAMES", None) or [plain_type(t) if isinstance(t, str) else "COMBO" for t in types]
    is_list = getattr(cls, "OUTPUT_IS_LIST", None) or [False] * len(types)
    tooltips = getattr(cls, "OUTPUT_TOOLTIPS", None) or [""] * len(types)
    type_from = getattr(cls, "ENGINE_TYPE_FROM", None) or [()] * len(types)
    if len(names) != len(types) or len(is_list) != len(types):
        raise ComfyDeclarationError(f"node {node_name}: RETURN_NAMES / OUTPUT_IS_LIST must have one entry per "
                                    f"RETURN_TYPES entry ({len(types)})")
    outputs, seen = [], set()
    for k, (kind, out_name) in enumerate(zip(types, names)):
        out_name = str(out_name)
        if out_name in seen:  # ComfyUI links by index and allows repeats; ours link by name too
            out_name = f"{out_name}_{k}"
        seen.add(out_name)
        socket = "COMBO" if isinstance(kind, (list, tuple)) else plain_type(kind)
        if not isinstance(socket, str) or not socket:
            raise ComfyDeclarationError(f"node {node_name}: RETURN_TYPES[{k}] is {kind!r}, not a type name")
        outputs.append(Output(out_name, socket, is_list=bool(is_list[k]),
                              tooltip=str(tooltips[k] if k < len(tooltips) else ""), type_from=tuple(type_from[k])))
    return outputs


# --- the adapter ----------------------------------------------------------------------------------
def adapt(name: str, cls: type, pack: str, display_name: str | None = None) -> type:
    """A nodegraph node class for a ComfyUI V1 class. Raises ComfyDeclarationError (or whatever
    INPUT_TYPES raises) when the declaration cannot be read."""
    if not isinstance(cls, type):
        raise ComfyDeclarationError(f"node {name}: NODE_CLASS_MAPPINGS maps it to {cls!r}, not a class")
    function = getattr(cls, "FUNCTION", None)
    if not isinstance(function, str) or not callable(getattr(cls, function, None)):
        raise ComfyDeclarationError(f"node {name}: FUNCTION must name a method of {cls.__name__}, got {function!r}")
    # V3 classes give the engine its own sockets for dynamic inputs (io.engine_input_types)
    declared_inputs = getattr(cls, "ENGINE_INPUT_TYPES", None) or cls.INPUT_TYPES
    declared = declared_inputs()
    if not isinstance(declared, dict):
        raise ComfyDeclarationError(f"node {name}: INPUT_TYPES() must return a dict, got {type(declared).__name__}")
    input_is_list = bool(getattr(cls, "INPUT_IS_LIST", False))
    validate_fn = getattr(cls, "VALIDATE_INPUTS", None)
    validate_args, validate_kwargs = _signature_args(validate_fn)
    wants_types = "input_types" in validate_args

    def live_choices(input_name: str):
        def choices(env) -> list[str]:
            with runtime.using_env(env):
                fresh = declared_inputs()
            for section in ("required", "optional"):
                entry = (fresh.get(section) or {}).get(input_name)
                if entry is not None:
                    kind, options = _entry(name, input_name, entry)
                    return [str(c) for c in _choices_of(kind, options) or []]
            return []

        return choices

    inputs: list[Input] = []
    raw_links: set[str] = set()
    for section in ("required", "optional"):
        for input_name, entry in (declared.get(section) or {}).items():
            relaxed = validate_kwargs or input_name in validate_args
            inp, raw = make_input(name, input_name, entry, optional=section == "optional", is_list=input_is_list,
                                  relaxed=relaxed, live_choices=live_choices)
            if wants_types and not inp.is_widget:
                inp.type = type(inp.type)("*")  # ComfyUI skips link type checks for such nodes
            inputs.append(inp)
            if raw:
                raw_links.add(input_name)
    hidden = {k: kind for k, v in (declared.get("hidden") or {}).items()
              if (kind := v[0] if isinstance(v, (tuple, list)) and v else v) in HIDDEN_KINDS}  # V3 writes (kind,)
    for input_name, entry in (declared.get("hidden") or {}).items():
        # a hidden entry of another kind is an input the prompt may still set (ComfyUI's get_input_info looks
        # in "hidden" too): loop packs feed their own hidden initial_value0 from an expansion
        if input_name not in hidden and isinstance(entry, (tuple, list)) and entry and input_name not in {
                i.name for i in inputs}:
            inp, raw = make_input(name, input_name, entry, optional=True, is_list=input_is_list,
                                  relaxed=True, live_choices=live_choices)
            inputs.append(inp)
            if raw:
                raw_links.add(input_name)
    required = [i.name for i in inputs if not i.optional]

    def call_args(kwargs: dict, args: list[str], varkw: bool) -> dict:
        """What a hook gets: the inputs its signature names (all with **kwargs); links are None."""
        out = {k: v for k, v in kwargs.items() if varkw or k in args}
        for missing in required:
            if missing not in out and (varkw or missing in args):
                out[missing] = [None] if input_is_list else None
        return out

    class ComfyV1Node:
        comfy_class = cls
        comfy_pack = pack
        comfy_name = name
        comfy_raw_links = frozenset(raw_links)
        comfy_hidden = hidden
        cache_by_node_id = "UNIQUE_ID" in hidden.values() or bool(getattr(cls, "NOT_IDEMPOTENT", False))
        expanded_literals_unchecked = True  # ComfyUI validates no node that an expansion adds

        def __init__(self) -> None:
            self.obj = None
            self.calls = 0  # the call index of GraphBuilder's default prefix

        def instance(self):
            if self.obj is None:
                self.obj = cls()
            return self.obj

        def run(self, ctx, **kwargs):
            with runtime.node_running(ctx, pack):
                kwargs = {k: model_surface.wrap(v, ctx) for k, v in kwargs.items()}  # MODEL -> ModelPatcher ...
                for raw in raw_links:
                    kwargs[raw] = _raw_link(ctx, raw)
                kwargs.update(hidden_values(ctx, hidden, input_is_list))
                if wants_types:
                    _validate_with_types(ctx, name, validate_fn, kwargs, validate_args, validate_kwargs)
                GraphBuilder.set_default_prefix(ctx.node_id, self.calls, 0)
                self.calls += 1
                result = _call(getattr(self.instance(), function), kwargs)
                results = _results(name, result, len(ComfyV1Node.outputs), ctx,
                                   [o.is_list for o in ComfyV1Node.outputs])
                if isinstance(results, Expansion):  # computed values inside it are unwrapped the same way
                    return Expansion({node_id: {**entry, "inputs": {k: model_surface.unwrap(v)
                                                                    for k, v in entry["inputs"].items()}}
                                      for node_id, entry in results.nodes.items()},
                                     tuple(model_surface.unwrap(v) for v in results.outputs))
                return tuple(model_surface.unwrap(v) for v in results)  # ModelPatcher ... -> our handles

        def check_lazy(self, ctx, **kwargs):
            lazy_fn = getattr(cls, "check_lazy_status", None)
            if lazy_fn is None:
                return []
            with runtime.node_running(ctx, pack):
                kwargs = {k: model_surface.wrap(v, ctx) for k, v in kwargs.items()}
                if input_is_list:
                    kwargs = {k: [v] for k, v in kwargs.items()}
                kwargs.update(hidden_values(ctx, hidden, input_is_list))
                wanted = _call(self.instance().check_lazy_status, kwargs) or []
            return [w for w in wanted if isinstance(w, str) and w not in raw_links]

    ComfyV1Node.__name__ = ComfyV1Node.__qualname__ = cls.__name__
    ComfyV1Node.__module__ = cls.__module__
    ComfyV1Node.__doc__ = str(getattr(cls, "DESCRIPTION", "") or "") or None
    ComfyV1Node.inputs = inputs
    ComfyV1Node.outputs = make_outputs(name, cls)

    if hasattr(cls, "IS_CHANGED"):
        changed_args, changed_kwargs = _signature_args(getattr(cls, "IS_CHANGED"))

        def fingerprint(_cls, env, **literals):
            values = {k: [v] for k, v in literals.items()} if input_is_list else dict(literals)
            with runtime.using_env(env):
                value = _call(getattr(cls, "IS_CHANGED"), call_args(values, changed_args, changed_kwargs))
            if isinstance(value, float) and math.isnan(value):
                return uuid.uuid4().hex  # ComfyUI: NaN never equals itself, so the node always runs
            return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)

        ComfyV1Node.fingerprint = classmethod(fingerprint)

    if validate_fn is not None and not wants_types:
        def validate_inputs(_cls, **literals):
            values = {k: [v] for k, v in literals.items()} if input_is_list else dict(literals)
            verdict = _call(validate_fn, call_args(values, validate_args, validate_kwargs))
            return None if verdict is True else _custom_failure(verdict)

        ComfyV1Node.validate_inputs = classmethod(validate_inputs)

    return node(ComfyV1Node, name=name, category=str(getattr(cls, "CATEGORY", "sd")),
                display_name=display_name or name, output_node=bool(getattr(cls, "OUTPUT_NODE", False)),
                description=str(getattr(cls, "DESCRIPTION", "") or ""))


def _custom_failure(verdict) -> str:
    return "custom validation failed" + ("" if verdict is False else f": {verdict}")


def _call(fn, kwargs: dict):
    """Call a pack function; coroutine functions (ComfyUI allows async nodes) run to completion."""
    result = fn(**kwargs)
    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    return result


async def _await(awaitable):
    return await awaitable


def _results(name: str, result, count: int, ctx, is_list: list[bool]):
    if isinstance(result, ExecutionBlocker):
        return tuple(result for _ in range(count))
    if isinstance(result, dict):
        ui = result.get("ui")
        if ui:
            if not isinstance(ui, dict):
                raise TypeError(f"{name} returned ui={ui!r}; expected a dict of lists")
            ctx.show(**ui)
        if result.get("expand") is not None:
            return _expansion(name, result["expand"], result.get("result"), count)
        if "result" not in result:  # ComfyUI: an output node may return only its UI
            return tuple([] if listed else None for listed in is_list)
        result = result["result"]
        if isinstance(result, ExecutionBlocker):
            return tuple(result for _ in range(count))
    if count == 0:  # ComfyUI ignores what a node without outputs returns (WAS' Text Add Tokens returns a str)
        return ()
    if not isinstance(result, (tuple, list)):
        raise TypeError(f"{name} returned {type(result).__name__}; a ComfyUI node returns a tuple with one value "
                        f"per RETURN_TYPES entry ({count})")
    if len(result) < count:  # ComfyUI keeps the short tuple; a link to a missing output receives None
        return tuple(result) + tuple([] if is_list[k] else None for k in range(len(result), count))
    return tuple(result[:count])


def _expansion(name: str, graph, result, count: int) -> Expansion:
    """ComfyUI's {"expand": {id: {"class_type", "inputs", "override_display_id"?}}, "result": (...)} as
    our Expansion: links [id, index] become {"node", "output"}; other values pass as they are."""
    if not isinstance(graph, dict):
        raise TypeError(f"{name} returned expand={type(graph).__name__}; expected a dict of nodes (GraphBuilder.finalize())")
    nodes = {}
    for node_id, entry in graph.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("class_type"), str):
            raise TypeError(f"{name} expanded into node {node_id!r} = {entry!r}; expected "
                            "{'class_type': name, 'inputs': {...}}")
        node_entry = {"type": entry["class_type"],
                      "inputs": {k: _native_value(v) for k, v in (entry.get("inputs") or {}).items()}}
        if entry.get("override_display_id") is not None:
            node_entry["display"] = str(entry["override_display_id"])
        nodes[str(node_id)] = node_entry
    if isinstance(result, ExecutionBlocker):
        result = tuple(result for _ in range(count))
    if result is not None and not isinstance(result, (tuple, list)):
        raise TypeError(f"{name} returned an expansion whose result is {type(result).__name__}, not a tuple")
    return Expansion(nodes, tuple(_native_value(v) for v in (result or ())))


def _native_value(value):
    return {"node": value[0], "output": int(value[1])} if is_comfy_link(value) else value


# --- hidden inputs, raw links -------------------------------------------------------------------------
def _widget_default(kind: str, default):
    """ComfyUI casts widget values to their type when it validates (int(val) for INT, float(val) for
    FLOAT), so packs declare INT defaults such as 0.0 and still get 0."""
    if kind == "INT" and isinstance(default, float) and default.is_integer():
        return int(default)
    if kind == "FLOAT" and isinstance(default, int) and not isinstance(default, bool):
        return float(default)
    return default


def hidden_values(ctx, hidden: dict[str, str], as_list: bool) -> dict:
    out = {}
    for input_name, kind in hidden.items():
        if kind == "PROMPT":
            value = comfy_prompt(ctx)
        elif kind == "DYNPROMPT":
            value = DynamicPrompt(comfy_prompt(ctx), getattr(ctx, "graph", None))
        elif kind == "EXTRA_PNGINFO":
            value = ctx.extra.get("extra_pnginfo")
        elif kind == "UNIQUE_ID":
            value = ctx.node_id
        else:
            value = ctx.extra.get(kind.lower())
        out[input_name] = [value] if as_list else value
    return out


def comfy_prompt(ctx) -> dict:
    """The job as a ComfyUI API prompt: the one submitted, else our workflow converted."""
    given = (ctx.extra.get("metadata_text") or {}).get("prompt")  # what ComfyUI's /prompt route received
    if isinstance(given, dict):
        return given
    from ..formats import comfy_api
    from ..workflow import Workflow

    try:
        return comfy_api.from_native(Workflow.model_validate(ctx.workflow), ctx.env.registry)
    except Exception:  # a workflow that cannot be written in ComfyUI's format: the pack sees none
        return {}


def _node_entry(ctx, node_id: str) -> dict:
    """A node of the run as {"type", "inputs"}: from the run's graph (which has the nodes expansions
    added), else from the workflow."""
    graph = getattr(ctx, "graph", None)
    if graph is not None:
        return graph.entry(node_id) or {}
    return (ctx.workflow.get("nodes") or {}).get(node_id) or {}


def _raw_link(ctx, input_name: str):
    """A rawLink input: the link itself as ComfyUI writes it, [source node id, output index]."""
    value = (_node_entry(ctx, ctx.node_id).get("inputs") or {}).get(input_name)
    if not (isinstance(value, dict) and "node" in value):
        return value
    output = value["output"]
    if isinstance(output, str):
        spec = ctx.env.registry.get(_node_entry(ctx, value["node"]).get("type"))
        output = spec.output_index.get(output, output) if spec is not None else output
    return [value["node"], output]


def _validate_with_types(ctx, name, fn, kwargs, args, varkw) -> None:
    """VALIDATE_INPUTS(input_types=...) at run time: the linked inputs' types from the workflow."""
    received = {}
    for input_name, value in (_node_entry(ctx, ctx.node_id).get("inputs") or {}).items():
        if isinstance(value, dict) and "node" in value:
            spec = ctx.env.registry.get(_node_entry(ctx, value["node"]).get("type"))
            if spec is not None:
                index = spec.output_index.get(value["output"], value["output"])
                received[input_name] = spec.outputs[int(index)].type.name
    call = {k: (None if k in received else v) for k, v in kwargs.items() if varkw or k in args}
    call["input_types"] = received  # links are None here, as at ComfyUI's validation
    verdict = _call(fn, call)
    if verdict is not True:
        raise ValueError(f"{name}: {_custom_failure(verdict)}")
