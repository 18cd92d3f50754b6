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
5. A node may answer with an Expansion (nodegraph/expansion.py): its sub-graph joins the run,
   what its outputs link to runs (with its own cache keys, lazy inputs and errors), and the node
   then takes those values as its outputs. Expanded nodes' events carry "display_node", the
   workflow node that stands for them; their errors also "parent_node" and "real_node_id".
6. A failing node is reported (error event with node id, type, message, traceback); nodes that
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

from .expansion import ExecutionBlocker, Expansion, ExpansionError, RunGraph, is_json_value, topological
from .formats import parse_workflow
from .node import Context, Interrupted, RunControl
from .validate import Issue, Plan, PlannedNode, _check_literal, validate_or_raise
from .workflow import Workflow, is_link

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
        keys[node_id] = node_key(plan.nodes[node_id], keys, env)
    return keys


def node_key(planned, keys: dict[str, str], env=None) -> str:
    """hash(type, version, literals, fingerprint, upstream keys); a node whose class says
    `cache_by_node_id` (ComfyUI: a hidden UNIQUE_ID) also keys on its id."""
    spec = planned.spec
    fingerprint = None
    hook = getattr(spec.cls, "fingerprint", None)
    if not spec.deterministic:
        fingerprint = uuid.uuid4().hex  # never reused
    elif any(not is_json_value(v) for v in planned.literals.values()):
        fingerprint = uuid.uuid4().hex  # a computed value an expansion put in: no stable key (as ComfyUI)
    elif hook is not None:
        try:
            fingerprint = hook(env, **planned.literals)
        except Exception as exc:  # the node will fail when it runs; don't reuse a stale result
            fingerprint = f"fingerprint-error:{uuid.uuid4().hex}:{exc}"
    upstream = sorted((name, keys[src], index) for name, (src, index) in planned.links.items())
    parts = (spec.name, spec.version, sorted(planned.literals.items()), fingerprint, upstream)
    if getattr(spec.cls, "cache_by_node_id", False):
        parts += (planned.id,)
    # repr of JSON-born values is canonical once dict items are sorted, and cheaper than json.dumps
    blob = repr(parts)
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


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
        self.nodes: dict[str, PlannedNode] = dict(plan.nodes)  # grows as nodes expand
        self.order: list[str] = list(plan.order)  # expanded nodes are appended in their own order
        self.graph = RunGraph(plan.workflow)
        self.keys = cache_keys(plan, self.env)
        self.result = RunResult(job_id, "success")
        self.sink = on_event
        self.extra = extra
        self.requested: set[str] = set()
        self.state: dict[str, str] = {}  # node -> cached | done | failed | skipped
        self.lazy_wanted: dict[str, set[str]] = {}
        self.instances: dict[str, Any] = {}  # one node object per node, for check_lazy and run alike
        self.expanding: dict[str, _Pending] = {}  # a node that expanded -> what it waits for
        self.choice_memo: dict[int, list[str]] = {}
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
                self.emit("executed", {"node": node_id, "display_node": node_id,
                                       "output": self.result.outputs.get(node_id)})
        interrupted_at = None
        progressed = True
        while progressed and interrupted_at is None:
            progressed = False
            for node_id in self.order:  # expansions append to it while this loop runs
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
                if node_id in self.expanding:
                    self.finish_expansion(node_id)
                    continue
                if self.nodes[node_id].spec.has_lazy and self.ask_lazy(node_id):
                    continue
                if self.control.interrupted or not self.run_node(node_id):
                    interrupted_at = node_id
                    break
        if interrupted_at is not None:
            self.result.status = "interrupted"
            real = self.graph.real(interrupted_at)  # as ComfyUI: the workflow node it stands for
            self.emit("execution_interrupted", {"node_id": real, "node_type": self.nodes[real].spec.name,
                                                "executed": list(self.result.executed)})
        elif self.result.errors:
            self.result.status = "error"
        else:
            self.emit("execution_success", {})
        self.emit("executing", {"node": None})
        return self.result

    # --- planning on the fly ------------------------------------------------------------------
    def needed_sources(self, node_id: str) -> list[str]:
        pending = self.expanding.get(node_id)
        if pending is not None:
            return pending.waits
        planned = self.nodes[node_id]
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
        planned = self.nodes[node_id]
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

    # --- expansion ----------------------------------------------------------------------------
    def expand(self, parent: str, calls: list, ui: dict) -> None:
        """Add the sub-graphs a node answered with, and request what its outputs link to (and the
        output nodes among them); the node finishes once those are done."""
        spec = self.nodes[parent].spec
        where = f"the expansion of node {parent} ({spec.name})"
        resolved, waits, added = [], [], []
        for call in calls:
            if isinstance(call, Expansion):
                added += self.add_nodes(parent, call.nodes, where)
                outputs = tuple(call.outputs or ())
                refs = []
                for k, value in enumerate(outputs[:len(spec.outputs)]):
                    if is_link(value):
                        src, index = self.resolve_link(value, f"{where}: output {k}")
                        refs.append((src, index))
                        waits.append(src)
                    else:
                        refs.append((None, value))
                refs += [(None, [] if out.is_list else None) for out in spec.outputs[len(refs):]]
                resolved.append(refs)
            else:
                resolved.append([(None, value) for value in call])
        self.expanding[parent] = _Pending(resolved, list(dict.fromkeys(waits)), ui)
        outputs_inside = [n for n in added if self.nodes[n].spec.output_node]
        hits = self.request(self.expanding[parent].waits + outputs_inside)
        if hits:
            self.emit("execution_cached", {"nodes": hits})

    def finish_expansion(self, parent: str) -> None:
        """The expanded node's outputs: each linked output's items (ComfyUI: its result tuple resolved)."""
        pending = self.expanding.pop(parent)
        spec = self.nodes[parent].spec
        values: tuple[list, ...] = tuple([] for _ in spec.outputs)
        for refs in pending.calls:
            for k, out in enumerate(spec.outputs):
                src, value = refs[k]
                if src is not None:
                    values[k].extend(self.result.values[src][value])
                elif out.is_list and isinstance(value, list):
                    values[k].extend(value)
                else:
                    values[k].append(value)
        self.store(parent, values, pending.ui, announce=False)

    def add_nodes(self, parent: str, nodes: dict, where: str) -> list[str]:
        if not isinstance(nodes, dict):
            raise ExpansionError(f"{where} is a {type(nodes).__name__}, not a dict of nodes")
        for node_id in nodes:
            if not isinstance(node_id, str) or node_id in self.nodes or self.graph.entry(node_id) is not None:
                raise ExpansionError(f"{where} adds node {node_id!r}, but the run has a node with that id "
                                     "already (prefix the ids of an expansion with the expanding node's id)")
        try:
            order = topological(nodes)
        except ExpansionError as exc:
            raise ExpansionError(f"{where}: {exc}") from None
        for node_id in order:
            entry = nodes[node_id]
            self.plan_node(node_id, entry, f"{where}: node {node_id}")
            self.graph.parents[node_id] = parent
            display = entry.get("display")
            self.graph.displays[node_id] = display if isinstance(display, str) and display else parent
        return order

    def plan_node(self, node_id: str, entry: dict, where: str) -> None:
        """Check one added node as validation checks a workflow node, except that an input may hold a
        computed value (anything that is not a link), and give it its cache key."""
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            raise ExpansionError(f"{where} must be {{'type': name, 'inputs': {{...}}}}, not {entry!r}")
        spec = self.env.registry.get(entry["type"])
        if spec is None:
            raise ExpansionError(f"{where} has the unknown node type {entry['type']!r}")
        inputs = entry.get("inputs") or {}
        literals, links, shown, problems = {}, {}, {}, []
        for name, value in inputs.items():
            inp = spec.input_by_name.get(name)
            if inp is None:
                problems.append(f"{spec.name} has no input {name!r}")
            elif is_link(value):
                try:
                    src, index = self.resolve_link(value, f"{where} input {name!r}")
                except ExpansionError as exc:
                    problems.append(str(exc).removeprefix(where + " "))
                    continue
                out = self.nodes[src].spec.outputs[index]
                if not inp.type.accepts(out.type):
                    problems.append(f"input {name!r} expects {inp.type.name}, but node {src} "
                                    f"({self.nodes[src].spec.name}) output {out.name!r} gives {out.type.name}")
                    continue
                links[name] = (src, index)
                shown[name] = {"node": src, "output": index}
            else:
                if inp.is_widget and is_json_value(value):
                    problem, checked = _check_literal(inp, value, self.env, self.choice_memo)
                    if problem and not getattr(spec.cls, "expanded_literals_unchecked", False):
                        problems.append(f"input {name!r}: {problem}")
                        continue
                    # a node that asks for it gets the value as given (ComfyUI validates only the prompt
                    # it received, never the nodes an expansion adds: loop packs pass an INT as a BOOLEAN)
                    value = value if problem else checked
                literals[name] = value
                shown[name] = value
        for inp in spec.inputs:
            if inp.name in inputs:
                continue
            if inp.has_default and inp.is_widget:
                literals[inp.name] = inp.default
            elif not inp.optional:
                problems.append(f"required input {inp.name!r} is missing")
        if problems:
            raise ExpansionError(f"{where} ({spec.name}): " + "; ".join(problems))
        planned = PlannedNode(node_id, spec, literals, links)
        self.nodes[node_id] = planned
        self.keys[node_id] = node_key(planned, self.keys, self.env)
        self.order.append(node_id)
        if node_id not in self.plan.workflow.nodes:
            self.graph.added[node_id] = {"type": spec.name, "inputs": shown}

    def resolve_link(self, value: dict, where: str) -> tuple[str, int]:
        """(source, output index) of a link in an expansion; a workflow node that the plan did not
        need so far is planned now."""
        src, out = value["node"], value["output"]
        if src not in self.nodes:
            entry = self.plan.workflow.nodes.get(src) if isinstance(src, str) else None
            if entry is None:
                raise ExpansionError(f"{where} links to node {src!r}, which does not exist")
            self.plan_node(src, {"type": entry.type, "inputs": entry.inputs}, f"node {src}")
        spec = self.nodes[src].spec
        index = spec.output_index.get(out) if isinstance(out, str) else out
        if isinstance(index, float) and index.is_integer():
            index = int(index)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(spec.outputs):
            raise ExpansionError(f"{where} links to output {out!r} of node {src} ({spec.name}), which has "
                                 f"{len(spec.outputs)} output(s)")
        return src, index

    # --- running ------------------------------------------------------------------------------
    def gather_inputs(self, node_id: str) -> dict[str, list]:
        planned = self.nodes[node_id]
        wanted = self.lazy_wanted.get(node_id, ())
        inputs = {name: [value] for name, value in planned.literals.items()}
        for name, (src, index) in planned.links.items():
            if planned.spec.input_by_name[name].lazy and name not in wanted:
                inputs[name] = [None]
            else:
                inputs[name] = self.result.values[src][index]
        return inputs

    def context(self, node_id: str) -> Context:
        return Context(self.env, node_id=node_id, node_type=self.nodes[node_id].spec.name,
                       job_id=self.result.job_id, workflow=self.workflow_json, extra=self.extra,
                       emit=self.emit, control=self.control, graph=self.graph)

    def instance(self, node_id: str) -> Any:
        """The node's object, made on first use: check_lazy and run see the same one."""
        if node_id not in self.instances:
            self.instances[node_id] = self.nodes[node_id].spec.cls()
        return self.instances[node_id]

    def run_node(self, node_id: str) -> bool:
        """Run one node; False if the run was interrupted."""
        spec = self.nodes[node_id].spec
        display = self.graph.display(node_id)
        self.emit("executing", {"node": node_id, "display_node": display})
        ctx = self.context(node_id)
        inputs = self.gather_inputs(node_id)
        try:
            answer = run_calls(spec, self.instance(node_id), ctx, inputs, lambda m: self.blocked(node_id, m))
        except Interrupted:
            return False
        except Exception as exc:
            self.fail(node_id, exc, inputs)
            return True
        if answer.expansions:
            if ctx.ui:  # as ComfyUI: an expanding node's UI is sent when it answers
                self.emit("executed", {"node": node_id, "display_node": display, "output": ctx.ui})
            try:
                self.expand(node_id, answer.calls, ctx.ui)
            except ExpansionError as exc:
                self.expanding.pop(node_id, None)
                self.fail(node_id, exc, inputs)
            return True
        self.store(node_id, answer.values, ctx.ui, announce=not answer.all_blocked)
        return True

    def store(self, node_id: str, values: tuple, ui: dict, announce: bool) -> None:
        self.result.values[node_id] = values
        self.state[node_id] = "done"
        self.result.executed.append(node_id)
        self.cache.put(self.keys[node_id], (values, ui))
        if ui:
            self.result.outputs[node_id] = ui
        if announce and (ui or self.nodes[node_id].spec.output_node):
            self.emit("executed", {"node": node_id, "display_node": self.graph.display(node_id), "output": ui})

    def blocked(self, node_id: str, message: str) -> None:
        """ComfyUI's execution_block_cb: a blocker with a message is reported as an error event; the
        run goes on (the node's outputs are silent blockers)."""
        real = self.graph.real(node_id)
        self.emit("execution_error", {"node_id": node_id, "node_type": self.nodes[node_id].spec.name,
                                      "executed": list(self.result.executed),
                                      "exception_message": f"Execution Blocked: {message}",
                                      "exception_type": "ExecutionBlocked", "traceback": [],
                                      "current_inputs": [], "current_outputs": [],
                                      **({} if real == node_id else {"real_node_id": real})})

    def fail(self, node_id: str, exc: BaseException, inputs: dict[str, list] | None = None) -> None:
        """Record and report a node's failure with ComfyUI's execution_error fields: what ran before it,
        the inputs it got (JSON-born values as they are, others as text) and the cached nodes. A node an
        expansion added is reported as ComfyUI does, at the workflow node it stands for, with its own
        id and type and its parent's id besides."""
        real = self.graph.real(node_id)
        record = {"node_id": real, "node_type": self.nodes[real].spec.name,
                  "exception_message": str(exc) or type(exc).__name__,
                  "exception_type": full_type_name(type(exc)),
                  "traceback": traceback.format_exception(type(exc), exc, exc.__traceback__),
                  "executed": list(self.result.executed),
                  "current_inputs": {name: [_shown_value(v) for v in items] for name, items in (inputs or {}).items()},
                  "current_outputs": list(self.cached_at_start)}
        if real != node_id:
            record.update(expanded_node=node_id, expanded_node_type=self.nodes[node_id].spec.name,
                          parent_node=self.graph.parent(node_id), display_node=self.graph.display(node_id))
        self.state[node_id] = "failed"
        self.result.errors.append(record)
        self.emit("execution_error", dict(record))


@dataclass
class _Pending:
    """A node that expanded: per call, (source, index) for a linked output or (None, value)."""
    calls: list[list[tuple]]
    waits: list[str]
    ui: dict


@dataclass
class _Answer:
    values: tuple = ()
    calls: list = field(default_factory=list)  # per call: an Expansion or the output tuple
    expansions: bool = False
    all_blocked: bool = False


def full_type_name(cls: type) -> str:
    """ComfyUI's exception_type: the qualified name, with its module unless a builtin."""
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _shown_value(value: Any) -> Any:
    """ComfyUI's format_value: None, numbers, booleans and strings as they are; anything else as text."""
    return value if value is None or isinstance(value, (int, float, bool, str)) else str(value)


def call_node(spec, instance, ctx: Context, inputs: dict[str, list]) -> tuple:
    """Call a node once, or once per item when it receives lists it did not declare is_list."""
    answer = run_calls(spec, instance, ctx, inputs, None)
    if answer.expansions:
        raise TypeError(f"{spec.name} answered with an expansion, which only runs inside a workflow")
    return answer.values


def run_calls(spec, instance, ctx: Context, inputs: dict[str, list], on_blocked) -> _Answer:
    """The calls of one node: once, or once per item of list inputs it did not declare is_list. A
    call that receives an ExecutionBlocker does not happen; its outputs are blockers."""
    per_item = {name: items for name, items in inputs.items() if not spec.input_by_name[name].is_list}
    count = max((len(items) for items in per_item.values()), default=1)
    if any(len(items) == 0 for items in per_item.values()):
        count = 0
    answer = _Answer(calls=[])
    blocked = 0
    for i in range(count):
        kwargs = {name: items if name not in per_item else items[min(i, len(items) - 1)]
                  for name, items in inputs.items()}
        blocker = _blocker_in(kwargs)
        if blocker is not None:
            blocked += 1
            if blocker.message is not None and on_blocked is not None:
                on_blocked(blocker.message)
                blocker = ExecutionBlocker(None)
            answer.calls.append(tuple(blocker for _ in spec.outputs))
            continue
        result = instance.run(ctx, **kwargs)
        if isinstance(result, Expansion):
            answer.expansions = True
            answer.calls.append(result)
        else:
            answer.calls.append(_as_tuple(spec, result))
    answer.all_blocked = count > 0 and blocked == count
    if not answer.expansions:
        outputs: tuple[list, ...] = tuple([] for _ in spec.outputs)
        for result in answer.calls:
            for k, out in enumerate(spec.outputs):
                if out.is_list and not isinstance(result[k], ExecutionBlocker):
                    outputs[k].extend(result[k])
                else:
                    outputs[k].append(result[k])
        answer.values = outputs
    return answer


def _blocker_in(kwargs: dict) -> ExecutionBlocker | None:
    for value in kwargs.values():
        if isinstance(value, ExecutionBlocker):
            return value
        if isinstance(value, list):
            for item in value:
                if isinstance(item, ExecutionBlocker):
                    return item
    return None


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
