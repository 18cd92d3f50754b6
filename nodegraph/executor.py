"""Planning and execution of a validated workflow.

    result = Executor(env).run(workflow, on_event=print)

1. validate (all errors at once) -> Plan: the nodes the outputs need, in topological order;
2. cache keys: hash(type, version, literal inputs, fingerprint, upstream keys), computed in
   topological order — a node whose key is in the cache is not run, and neither is anything
   only it needed;
3. run the remaining nodes in order. Lazy inputs are computed only when the node's check_lazy
   asks for them. A node whose input is a list (an upstream output declared is_list) runs once
   per item unless it declares the input is_list itself.
4. Each run has its own RunControl (given by the caller or made here): interrupting it stops that
   run at its next progress point or before its next node, and no other run.
5. A failing node is reported (error event with node id, type, message, traceback); nodes that
   depend on it are skipped, independent branches still finish. Results go into the cache only
   after a node succeeded, so a failure never leaves it inconsistent.

Events (name, data) — every data dict carries "prompt_id":
execution_start, execution_cached {nodes}, executing {node}, progress {node, value, max},
preview {node, image, image_format, max_size}, executed {node, output}, execution_error {node_id,
node_type, exception_message, exception_type, traceback, executed, current_inputs, current_outputs},
execution_interrupted {node_id, node_type, executed},
execution_success.
"""
from __future__ import annotations

import hashlib
import threading
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from .formats import parse_workflow
from .node import Context, Interrupted, RunControl
from .validate import Plan, validate_or_raise
from .workflow import Workflow

EventSink = Callable[[str, dict], None]


@dataclass
class RunResult:
    job_id: str
    status: str  # "success" | "error" | "interrupted"
    outputs: dict[str, dict] = field(default_factory=dict)  # output node id -> UI outputs (images ...)
    errors: list[dict] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    values: dict[str, tuple] = field(default_factory=dict)  # node id -> outputs, each a list of items

    def value(self, node_id: str, output: int = 0, item: int = 0) -> Any:
        return self.values[node_id][output][item]


def cache_keys(plan: Plan, env=None) -> dict[str, str]:
    keys: dict[str, str] = {}
    for node_id in plan.order:
        planned = plan.nodes[node_id]
        spec = planned.spec
        fingerprint = None
        hook = getattr(spec.cls, "fingerprint", None)
        if not spec.deterministic:
            fingerprint = uuid.uuid4().hex  # never reused
        elif hook is not None:
            try:
                fingerprint = hook(env, **planned.literals)
            except Exception as exc:  # the node will fail when it runs; don't reuse a stale result
                fingerprint = f"fingerprint-error:{uuid.uuid4().hex}:{exc}"
        upstream = sorted((name, keys[src], index) for name, (src, index) in planned.links.items())
        # repr of JSON-born values is canonical once dict items are sorted, and cheaper than json.dumps
        blob = repr((spec.name, spec.version, sorted(planned.literals.items()), fingerprint, upstream))
        keys[node_id] = hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()
    return keys


class Executor:
    def __init__(self, env) -> None:
        self.env = env
        self._lock = threading.Lock()
        self._running: list[RunControl] = []  # the controls of the runs in progress

    def interrupt(self) -> bool:
        """Stop the run in progress at its next progress point (or before its next node); True if
        there was one. A run that starts later is not affected: it has its own RunControl."""
        with self._lock:
            running = list(self._running)
        for control in running:
            control.interrupt()
        return bool(running)

    def run(self, workflow: Workflow | dict, *, outputs: list[str] | None = None, job_id: str | None = None,
            on_event: EventSink | None = None, extra: dict | None = None,
            control: RunControl | None = None) -> RunResult:
        """Validate and run; raises ValidationFailed (with every issue) before anything runs.

        `control` is this run's stop switch (a fresh one when not given); an interrupt made on it before
        the call is honoured before the first node runs."""
        control = control or RunControl()
        with self._lock:
            self._running.append(control)
        try:
            if not isinstance(workflow, Workflow):
                workflow = parse_workflow(workflow, self.env.registry)
            plan = validate_or_raise(workflow, self.env.registry, self.env, outputs)
            return _Run(self.env, plan, job_id or uuid.uuid4().hex, on_event, extra or {}, control).execute()
        finally:
            with self._lock:
                self._running.remove(control)


class _Run:
    """One execution of a plan: the state that lives only as long as the run."""

    def __init__(self, env, plan: Plan, job_id: str, on_event: EventSink | None, extra: dict,
                 control: RunControl) -> None:
        self.env = env
        self.cache = env.cache
        self.control = control
        self.plan = plan
        self.keys = cache_keys(plan, self.env)
        self.result = RunResult(job_id, "success")
        self.sink = on_event
        self.extra = extra
        self.requested: set[str] = set()
        self.state: dict[str, str] = {}  # node -> cached | done | failed | skipped
        self.lazy_wanted: dict[str, set[str]] = {}
        self.instances: dict[str, Any] = {}  # one node object per node, for check_lazy and run alike
        self.cached_at_start: list[str] = []  # what execution_cached listed
        self._workflow_json: dict | None = None

    def workflow_json(self) -> dict:
        """Serialised on first use only: most runs never need it."""
        if self._workflow_json is None:
            self._workflow_json = self.plan.workflow.to_json()
        return self._workflow_json

    def emit(self, event: str, data: dict) -> None:
        if self.sink is not None:
            data["prompt_id"] = self.result.job_id
            self.sink(event, data)

    def execute(self) -> RunResult:
        self.emit("execution_start", {})
        for warning in (self.plan.workflow.meta or {}).get("import_warnings") or []:  # what import tolerated
            self.emit("warning", dict(warning))
        newly_cached = self.request(self.plan.targets)
        # as ComfyUI (execution.py): every node of the prompt with a cached result, in prompt order,
        # also those upstream of another cached node, which this run never reaches
        self.cached_at_start = [n for n in self.plan.workflow.nodes
                                if n in self.plan.nodes and self.keys[n] in self.cache]
        self.emit("execution_cached", {"nodes": self.cached_at_start})
        for node_id in self.plan.targets:  # as ComfyUI: a cached output node's UI is sent again (execution.py)
            if node_id in newly_cached:
                self.emit("executed", {"node": node_id, "output": self.result.outputs.get(node_id)})
        interrupted_at = None
        progressed = True
        while progressed and interrupted_at is None:
            progressed = False
            for node_id in self.plan.order:
                if node_id not in self.requested or node_id in self.state:
                    continue
                deps = self.needed_sources(node_id)
                if any(d not in self.state for d in deps):
                    continue
                progressed = True
                if any(self.state[d] in ("failed", "skipped") for d in deps):
                    self.state[node_id] = "skipped"
                    self.result.skipped.append(node_id)
                    continue
                if self.plan.nodes[node_id].spec.has_lazy and self.ask_lazy(node_id):
                    continue
                if self.control.interrupted or not self.run_node(node_id):
                    interrupted_at = node_id
                    break
        if interrupted_at is not None:
            self.result.status = "interrupted"
            self.emit("execution_interrupted", {"node_id": interrupted_at,
                                                "node_type": self.plan.nodes[interrupted_at].spec.name,
                                                "executed": list(self.result.executed)})
        elif self.result.errors:
            self.result.status = "error"
        else:
            self.emit("execution_success", {})
        self.emit("executing", {"node": None})
        return self.result

    # --- planning on the fly ------------------------------------------------------------------
    def needed_sources(self, node_id: str) -> list[str]:
        planned = self.plan.nodes[node_id]
        wanted = self.lazy_wanted.get(node_id, ())
        return [src for name, (src, _) in planned.links.items()
                if not planned.spec.input_by_name[name].lazy or name in wanted]

    def request(self, node_ids) -> list[str]:
        """Mark nodes as needed; cache hits are resolved here and cut off their own upstream."""
        hits = []
        stack = list(node_ids)
        while stack:
            node_id = stack.pop()
            if node_id in self.requested:
                continue
            self.requested.add(node_id)
            entry = self.cache.get(self.keys[node_id])
            if entry is not None:
                values, ui = entry
                self.result.values[node_id] = values
                self.state[node_id] = "cached"
                self.result.cached.append(node_id)
                if ui:
                    self.result.outputs[node_id] = ui
                hits.append(node_id)
                continue
            stack.extend(self.needed_sources(node_id))
        return hits

    def ask_lazy(self, node_id: str) -> bool:
        """Ask the node which lazy inputs it needs; True if new ones must be computed first."""
        planned = self.plan.nodes[node_id]
        kwargs = {k: v[0] if v else None for k, v in self.gather_inputs(node_id).items()}
        ctx = self.context(node_id)
        try:
            wanted = self.instance(node_id).check_lazy(ctx, **kwargs) or []
        except Exception as exc:
            self.fail(node_id, exc)
            return True
        have = self.lazy_wanted.setdefault(node_id, set())
        new = [name for name in wanted if name in planned.links and name not in have]
        if not new:
            return False
        have.update(new)
        hits = self.request([planned.links[name][0] for name in new])
        if hits:
            self.emit("execution_cached", {"nodes": hits})
        return True

    # --- running ------------------------------------------------------------------------------
    def gather_inputs(self, node_id: str) -> dict[str, list]:
        planned = self.plan.nodes[node_id]
        wanted = self.lazy_wanted.get(node_id, ())
        inputs = {name: [value] for name, value in planned.literals.items()}
        for name, (src, index) in planned.links.items():
            if planned.spec.input_by_name[name].lazy and name not in wanted:
                inputs[name] = [None]
            else:
                inputs[name] = self.result.values[src][index]
        return inputs

    def context(self, node_id: str) -> Context:
        return Context(self.env, node_id=node_id, node_type=self.plan.nodes[node_id].spec.name,
                       job_id=self.result.job_id, workflow=self.workflow_json, extra=self.extra,
                       emit=self.emit, control=self.control)

    def instance(self, node_id: str) -> Any:
        """The node's object, made on first use: check_lazy and run see the same one."""
        if node_id not in self.instances:
            self.instances[node_id] = self.plan.nodes[node_id].spec.cls()
        return self.instances[node_id]

    def run_node(self, node_id: str) -> bool:
        """Run one node; False if the run was interrupted."""
        planned = self.plan.nodes[node_id]
        spec = planned.spec
        self.emit("executing", {"node": node_id})
        ctx = self.context(node_id)
        inputs = self.gather_inputs(node_id)
        try:
            values = call_node(spec, self.instance(node_id), ctx, inputs)
        except Interrupted:
            return False
        except Exception as exc:
            self.fail(node_id, exc, inputs)
            return True
        self.result.values[node_id] = values
        self.state[node_id] = "done"
        self.result.executed.append(node_id)
        self.cache.put(self.keys[node_id], (values, ctx.ui))
        if ctx.ui:
            self.result.outputs[node_id] = ctx.ui
        if ctx.ui or spec.output_node:
            self.emit("executed", {"node": node_id, "output": ctx.ui})
        return True

    def fail(self, node_id: str, exc: BaseException, inputs: dict[str, list] | None = None) -> None:
        """Record and report a node's failure with ComfyUI's execution_error fields: what ran before it,
        the inputs it got (JSON-born values as they are, others as text) and the cached nodes."""
        spec = self.plan.nodes[node_id].spec
        record = {"node_id": node_id, "node_type": spec.name, "exception_message": str(exc) or type(exc).__name__,
                  "exception_type": full_type_name(type(exc)),
                  "traceback": traceback.format_exception(type(exc), exc, exc.__traceback__),
                  "executed": list(self.result.executed),
                  "current_inputs": {name: [_shown_value(v) for v in items] for name, items in (inputs or {}).items()},
                  "current_outputs": list(self.cached_at_start)}
        self.state[node_id] = "failed"
        self.result.errors.append(record)
        self.emit("execution_error", dict(record))


def full_type_name(cls: type) -> str:
    """ComfyUI's exception_type: the qualified name, with its module unless a builtin."""
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _shown_value(value: Any) -> Any:
    """ComfyUI's format_value: None, numbers, booleans and strings as they are; anything else as text."""
    return value if value is None or isinstance(value, (int, float, bool, str)) else str(value)


def call_node(spec, instance, ctx: Context, inputs: dict[str, list]) -> tuple:
    """Call a node once, or once per item when it receives lists it did not declare is_list."""
    per_item = {name: items for name, items in inputs.items() if not spec.input_by_name[name].is_list}
    count = max((len(items) for items in per_item.values()), default=1)
    if any(len(items) == 0 for items in per_item.values()):
        count = 0
    outputs: tuple[list, ...] = tuple([] for _ in spec.outputs)
    for i in range(count):
        kwargs = {name: items if name not in per_item else items[min(i, len(items) - 1)]
                  for name, items in inputs.items()}
        result = _as_tuple(spec, instance.run(ctx, **kwargs))
        for k, out in enumerate(spec.outputs):
            if out.is_list:
                outputs[k].extend(result[k])
            else:
                outputs[k].append(result[k])
    return outputs


def _as_tuple(spec, result) -> tuple:
    n = len(spec.outputs)
    if isinstance(result, dict):
        missing = [o.name for o in spec.outputs if o.name not in result]
        if missing:
            raise TypeError(f"{spec.name}.run returned no value for output(s) {', '.join(missing)}")
        return tuple(result[o.name] for o in spec.outputs)
    if n == 0:
        return ()
    if n == 1 and not isinstance(result, tuple):
        return (result,)
    if not isinstance(result, tuple) or len(result) != n:
        got = len(result) if isinstance(result, tuple) else 1
        raise TypeError(f"{spec.name}.run returned {got} value(s) but declares {n} output(s)")
    return result
