"""The node declaration API: the one way built-in and third-party nodes are written.

    from nodegraph import node, Input, Int, Output, IMAGE

    @node(category="image/adjust")
    class ImageInvert:
        '''Invert the colours of an image.'''
        inputs = [Input("image", IMAGE)]
        outputs = [Output("IMAGE", IMAGE)]

        def run(self, ctx, image):
            return 1.0 - image

`@node` checks the declaration and attaches a `NodeSpec` to the class it is given (it does
not build a new class). Plugins are discovered by the registry, which collects every
decorated class of a plugin module. Optional hooks on the class:

- `fingerprint(cls, env, **literal_inputs)` (classmethod): extra content for the cache key,
  e.g. a file's hash. Return None for "nothing beyond the inputs".
- `check_lazy(self, ctx, **inputs) -> list[str]`: names of lazy inputs that must be computed,
  given the values available so far (lazy inputs not yet computed are None).
- `validate_inputs(cls, **literal_inputs) -> str | None` (classmethod): a semantic check at
  validation time on the literal inputs; return a message to reject the values, or
  {input name: message} to say which input is wrong.
"""
from __future__ import annotations

import logging
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .types import BOOLEAN, COMBO, FLOAT, INT, STRING, SocketType, socket_type


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass
class Input:
    """One input of a node: a link of `type`, or (for INT/FLOAT/STRING/BOOLEAN/COMBO) a literal."""

    name: str
    type: SocketType | str
    default: Any = MISSING
    optional: bool = False
    lazy: bool = False  # computed only if check_lazy asks for it
    is_list: bool = False  # receive the whole list instead of running once per item
    tooltip: str = ""
    min: float | None = None
    max: float | None = None
    step: float | None = None  # INT values must lie on the step grid from min (or 0)
    choices: list[str] | Callable[[Any], list[str]] | None = None  # list, or callable(env)
    folder: str | None = None  # choices are the model files of this folder kind
    multiline: bool = False
    display: str = ""  # editor hint: "slider", "number", "color" ...
    control_after_generate: bool = False  # seed-like INT: the editor may randomise it after a run
    force_input: bool = False  # a literal type that must come from a link

    def __post_init__(self) -> None:
        self.type = socket_type(self.type)

    @property
    def is_widget(self) -> bool:
        """Can this input hold a literal value (as well as a link)?"""
        return self.type.name in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO") and not self.force_input

    @property
    def has_default(self) -> bool:
        return self.default is not MISSING


def Int(name: str, default: int = 0, min: int = -(2**63), max: int = 2**63 - 1, step: int = 1, **kw) -> Input:
    return Input(name, INT, default=default, min=min, max=max, step=step, **kw)


def Seed(name: str = "seed", default: int = 0, **kw) -> Input:
    return Input(name, INT, default=default, min=0, max=2**64 - 1, step=1, control_after_generate=True, **kw)


def Float(name: str, default: float = 0.0, min: float = -1e300, max: float = 1e300, step: float = 0.01, **kw) -> Input:
    return Input(name, FLOAT, default=default, min=min, max=max, step=step, **kw)


def String(name: str, default: str = "", multiline: bool = False, **kw) -> Input:
    return Input(name, STRING, default=default, multiline=multiline, **kw)


def Boolean(name: str, default: bool = False, **kw) -> Input:
    return Input(name, BOOLEAN, default=default, **kw)


def Choice(name: str, choices: list[str] | Callable[[Any], list[str]], default: Any = MISSING, **kw) -> Input:
    if default is MISSING and isinstance(choices, list) and choices:
        default = choices[0]
    return Input(name, COMBO, default=default, choices=choices, **kw)


def ModelFile(name: str, folder: str, **kw) -> Input:
    """A choice among the files of a model folder kind ("checkpoints", "loras", ...)."""
    return Input(name, COMBO, folder=folder, **kw)


@dataclass
class Output:
    name: str
    type: SocketType | str
    is_list: bool = False  # the node returns a list; downstream nodes run once per item
    tooltip: str = ""
    # a type variable (ComfyUI's MatchType): the output carries the type of what feeds the first of these
    # inputs that is linked, and `type` when none is
    type_from: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.type = socket_type(self.type)


@dataclass
class NodeSpec:
    """Everything the engine knows about a node type, derived once from its declaration."""

    name: str
    cls: type
    category: str
    description: str
    display_name: str
    inputs: list[Input]
    outputs: list[Output]
    output_node: bool
    version: int
    deterministic: bool
    input_by_name: dict[str, Input] = field(default_factory=dict)
    output_index: dict[str, int] = field(default_factory=dict)
    has_lazy: bool = False
    module: str = ""

    def schema(self, env: Any = None) -> dict:
        """The JSON description of this node type (what the editor and `nodes --json` show)."""
        ins = []
        for inp in self.inputs:
            d: dict[str, Any] = {"name": inp.name, "type": inp.type.name, "required": not inp.optional,
                                 "widget": inp.is_widget}
            if inp.has_default:
                d["default"] = inp.default
            for key in ("min", "max", "step"):
                if getattr(inp, key) is not None:
                    d[key] = getattr(inp, key)
            if inp.type.name == "COMBO":
                d["choices"] = resolve_choices(inp, env)
            for key in ("lazy", "is_list", "multiline", "control_after_generate", "force_input"):
                if getattr(inp, key):
                    d[key] = True
            for key in ("tooltip", "display", "folder"):
                if getattr(inp, key):
                    d[key] = getattr(inp, key)
            ins.append(_with_color(d, inp.type, env))
        outs = [_with_color({"name": o.name, "type": o.type.name, "is_list": o.is_list,
                             **({"tooltip": o.tooltip} if o.tooltip else {})}, o.type, env)
                for o in self.outputs]
        return {"name": self.name, "display_name": self.display_name, "category": self.category,
                "description": self.description, "inputs": ins, "outputs": outs,
                "output_node": self.output_node, "version": self.version,
                "deterministic": self.deterministic, "module": self.module}


def _with_color(socket: dict, type_: SocketType, env: Any) -> dict:
    """Add the socket's editor colour where one is declared (by the engine or by a pack)."""
    color = env.registry.type_color(type_.name) if env is not None else None
    if color or type_.color:
        socket["color"] = color or type_.color
    return socket


def resolve_choices(inp: Input, env: Any) -> list[str]:
    if inp.folder is not None:
        return env.folders.list(inp.folder) if env is not None else []
    if callable(inp.choices):
        return list(inp.choices(env)) if env is not None else []
    return list(inp.choices or [])


class NodeDeclarationError(Exception):
    pass


def node(cls: type | None = None, *, name: str | None = None, category: str = "misc",
         display_name: str | None = None, output_node: bool = False, version: int = 1,
         deterministic: bool = True, description: str | None = None):
    """Declare a node type. Usable bare (`@node`) or with options (`@node(category=...)`).

    A declaration that is wrong is not raised here (that would take the whole plugin module
    down); the error is attached to the class and the registry reports and skips that node.
    """

    def decorate(c: type) -> type:
        try:
            c.__nodegraph_spec__ = _build_spec(c, name or c.__name__, category, display_name, output_node,
                                               version, deterministic, description)
            c.__nodegraph_error__ = None
        except Exception as exc:  # reported by the registry
            c.__nodegraph_spec__ = None
            c.__nodegraph_error__ = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return c

    return decorate(cls) if cls is not None else decorate


def _build_spec(c: type, name: str, category: str, display_name: str | None, output_node: bool,
                version: int, deterministic: bool, description: str | None) -> NodeSpec:
    if not callable(getattr(c, "run", None)):
        raise NodeDeclarationError(f"node {name}: the class must define run(self, ctx, **inputs)")
    inputs = list(getattr(c, "inputs", []) or [])
    outputs = list(getattr(c, "outputs", []) or [])
    _check_entries(name, "inputs", inputs, Input)
    _check_entries(name, "outputs", outputs, Output)
    for inp in inputs:
        if inp.type.name == "COMBO" and inp.choices is None and inp.folder is None:
            raise NodeDeclarationError(f"node {name}: choice input {inp.name!r} declares no choices")
        if inp.has_default and inp.type.name == "COMBO" and isinstance(inp.choices, list) and inp.default not in inp.choices:
            raise NodeDeclarationError(f"node {name}: default {inp.default!r} of {inp.name!r} is not among its choices")
    if not outputs and not output_node:
        raise NodeDeclarationError(f"node {name}: a node without outputs must be an output node (output_node=True)")
    spec = NodeSpec(
        name=name, cls=c, category=category,
        description=(description or (c.__doc__ or "")).strip(),
        display_name=display_name or getattr(c, "display_name", None) or _spaced(name),
        inputs=inputs, outputs=outputs, output_node=output_node, version=int(version),
        deterministic=deterministic, module=c.__module__,
    )
    spec.input_by_name = {i.name: i for i in inputs}
    spec.output_index = {o.name: k for k, o in enumerate(outputs)}
    spec.has_lazy = any(i.lazy for i in inputs)
    if spec.has_lazy and not callable(getattr(c, "check_lazy", None)):
        raise NodeDeclarationError(f"node {name}: lazy inputs need a check_lazy(self, ctx, **inputs) method")
    return spec


def _check_entries(name: str, what: str, entries: Iterable, kind: type) -> None:
    seen = set()
    for e in entries:
        if not isinstance(e, kind):
            raise NodeDeclarationError(f"node {name}: {what} must be {kind.__name__} objects, got {e!r}")
        if e.name in seen:
            raise NodeDeclarationError(f"node {name}: {what} name {e.name!r} is declared twice")
        seen.add(e.name)


def _spaced(name: str) -> str:
    """CLIPTextEncode -> "CLIP Text Encode": a space before each word, acronyms kept whole."""
    out = []
    for k, ch in enumerate(name):
        if k and ch.isupper():
            prev, nxt = name[k - 1], name[k + 1] if k + 1 < len(name) else ""
            if prev.islower() or prev.isdigit() or (prev.isupper() and nxt.islower() and k > 1):
                out.append(" ")
        out.append(ch)
    return "".join(out)


def spec_of(cls: type) -> NodeSpec | None:
    return getattr(cls, "__nodegraph_spec__", None)


class Interrupted(Exception):
    """Raised inside a node (by ctx.progress / ctx.check_interrupt) when the run is interrupted."""


class RunControl:
    """The stop switch of one run. The caller makes one per run and hands it to `Executor.run`, so an
    interrupt can arrive before the run starts (it is honoured before the first node) and can never
    reach another run. Thread-safe: any thread may call `interrupt()`."""

    __slots__ = ("_stop", "cohort")

    def __init__(self, cohort=None) -> None:
        self._stop = threading.Event()
        self.cohort = cohort  # a nodegraph.batching.Cohort when this run is batched with other jobs

    def interrupt(self) -> None:
        self._stop.set()

    @property
    def interrupted(self) -> bool:
        return self._stop.is_set()

    def check(self) -> None:
        """Raise Interrupted if the run was asked to stop."""
        if self._stop.is_set():
            raise Interrupted()


def _discard(event: str, data: dict) -> None:
    pass


class Context:
    """What a running node may use: progress, previews, UI outputs, interrupt, and the environment.

    The executor makes one per node. Everything but the environment has a default, so a test makes a
    real one with only what it needs, e.g. `Context(env, node_type="KSampler", emit=record)`.
    `workflow` is the native document as JSON, or a function giving it (serialised on first use);
    `control` is the run's RunControl (a fresh one when not given); `graph` the run's RunGraph
    (nodegraph/expansion.py: the workflow's nodes and those expansions added), None outside a run."""

    __slots__ = ("env", "node_id", "node_type", "job_id", "_workflow", "extra", "_emit", "control", "ui", "graph")

    def __init__(self, env: Any = None, *, node_id: str = "", node_type: str = "", job_id: str = "",
                 workflow: dict | Callable[[], dict] | None = None, extra: dict | None = None,
                 emit: Callable[[str, dict], None] | None = None, control: RunControl | None = None,
                 graph: Any = None) -> None:
        self.env = env
        self.graph = graph
        self.node_id = node_id
        self.node_type = node_type
        self.job_id = job_id
        self._workflow = workflow
        self.extra = extra if extra is not None else {}  # job extra data (client id, ComfyUI extra_pnginfo ...)
        self._emit = emit or _discard
        self.control = control or RunControl()
        self.ui: dict[str, list] = {}

    @property
    def workflow(self) -> dict:
        """The native workflow being run, as JSON (SaveImage embeds it in PNGs)."""
        if callable(self._workflow):
            self._workflow = self._workflow()
        return self._workflow if self._workflow is not None else {}

    @property
    def devices(self):
        return self.env.devices

    @property
    def folders(self):
        return self.env.folders

    @property
    def models(self):
        """Model files: `ctx.models.load(folder, name, build)` (see nodegraph/model_files.py)."""
        return self.env.models

    def check_interrupt(self) -> None:
        """Raise Interrupted if this run was asked to stop (progress() does this too)."""
        self.control.check()

    def progress(self, value: int, total: int, preview=None) -> None:
        """Report progress; also the point where an interrupt stops the node."""
        self.check_interrupt()
        self._emit("progress", {"node": self.node_id, "value": int(value), "max": int(total)})
        if preview is not None:
            self.preview(preview)

    def batch(self, key, item, run_batch):
        """Run `item` as part of one batch with the items other jobs of this run's cohort give under the
        same `key` (see nodegraph/batching.py); alone (a batch of one) when the run has no cohort or
        key is None. `run_batch(items)` returns one result (or Exception) per item. A batch of several
        is reported by a "batched" event (node, size, jobs: the job ids of its items, in batch order)."""
        from .batching import run_alone

        cohort = self.control.cohort
        if cohort is None or key is None:
            return run_alone(item, run_batch)
        result, size, jobs = cohort.join(key, item, run_batch, self.job_id)
        if size > 1:
            self._emit("batched", {"node": self.node_id, "size": size, "jobs": jobs})
        return result

    def warn(self, message: str) -> None:
        """Report something the user should know that does not stop the node (e.g. LoRA keys that
        match no weight): a "warning" event (the CLI prints it, the server streams it and keeps it
        in the job's history) and a log record."""
        logging.getLogger(f"nodegraph.nodes.{self.node_type}").warning("node %s: %s", self.node_id, message)
        self._emit("warning", {"node": self.node_id, "node_type": self.node_type, "message": str(message)})

    def message(self, event: str, data, client_id: str | None = None) -> None:
        """Send a message of the node's own to the client that submitted the job (`client_id`), or
        to every client when None: a "node_message" event that the server posts to its websocket as
        {"type": event, "data": data} unchanged, wherever the job runs (ComfyUI's send_sync)."""
        self._emit("node_message", {"node": self.node_id, "event": str(event), "data": data, "client_id": client_id})

    def preview(self, image, image_format: str = "PNG", max_size: int | None = None) -> None:
        """Emit a preview image (PIL image) for this node, to be sent as PNG or JPEG; `max_size`: resized
        to fit that square, as ComfyUI's (image_format, image, max_size) preview tuples."""
        self._emit("preview", {"node": self.node_id, "image": image, "image_format": image_format,
                               "max_size": max_size})

    def show(self, **ui: Any) -> None:
        """Add UI outputs (e.g. images=[{filename, subfolder, type}]) to the node's executed event."""
        for key, value in ui.items():
            self.ui.setdefault(key, []).extend(value if isinstance(value, list) else [value])
