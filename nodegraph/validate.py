"""Validation: one pass over a workflow that collects every error, and the plan it yields.

Each error names the node, its type and the input at fault, with a message that says what was
expected. Classes of error: unknown_type, no_outputs, bad_output_request, missing_input,
unknown_input, bad_link (missing node or output), type_mismatch, bad_value, cycle, and
whatever a node's own validate_inputs hook rejects.

Only the nodes the requested outputs depend on are checked and planned (as ComfyUI does).
The pass builds one edge list; a topological order falls out of it, and when it cannot (a
cycle) networkx names the strongly connected components.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import networkx as nx

from .node import Input, NodeSpec, resolve_choices
from .modes import apply_modes
from .registry import Registry
from .workflow import Workflow, is_link


# The one record of a workflow problem: the CLI prints it, the server returns it (its schema is this class).
@dataclass
class Issue:
    """One problem with a workflow: a validation issue, or a format error (kind "format")."""
    kind: str
    message: str
    node: str | None = None
    node_type: str | None = None
    input: str | None = None
    origin: str | None = None  # where an imported node came from, e.g. "subgraph 'Upscale' › node 12"

    def to_json(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        where = ""
        if self.node is not None:
            where = f"{self.origin} [{self.node}]" if self.origin else f"node {self.node}"
            where += f" ({self.node_type or '?'})"
            if self.input:
                where += f" input {self.input!r}"
            where += ": "
        return where + self.message


class ValidationFailed(Exception):
    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("workflow is invalid:\n" + "\n".join(f"  - {i}" for i in issues))


@dataclass
class PlannedNode:
    id: str
    spec: NodeSpec
    literals: dict[str, Any]  # validated literal values, defaults filled in
    links: dict[str, tuple[str, int]]  # input name -> (source node id, output index)


@dataclass
class Plan:
    workflow: Workflow
    nodes: dict[str, PlannedNode]
    order: list[str]  # topological order of the planned nodes
    targets: list[str]  # output nodes to run


def validate(workflow: Workflow, registry: Registry, env: Any = None,
             outputs: list[str] | None = None) -> tuple[Plan | None, list[Issue]]:
    issues: list[Issue] = []
    plain_nodes = workflow.nodes
    skipped = {nid for nid, entry in workflow.nodes.items() if entry.mode}
    workflow, dropped = apply_modes(workflow, registry)
    if outputs is not None:
        outputs = [o for o in outputs if o not in skipped]
    nodes = workflow.nodes
    specs: dict[str, NodeSpec] = {}
    for node_id, entry in nodes.items():
        spec = registry.get(entry.type)
        if spec is None:
            issues.append(Issue("unknown_type", f"unknown node type {entry.type!r}"
                                          + _did_you_mean(entry.type, registry), node_id, entry.type))
        else:
            specs[node_id] = spec

    # which outputs to run
    wanted = outputs if outputs is not None else workflow.outputs
    if wanted is not None:
        targets = []
        for node_id in wanted:
            if node_id not in nodes:
                issues.append(Issue("bad_output_request", f"requested output node {node_id!r} does not exist"))
            elif node_id in specs and not specs[node_id].output_node:
                issues.append(Issue("bad_output_request", "requested as an output, but it is not an output node",
                                              node_id, nodes[node_id].type))
            else:
                targets.append(node_id)
    else:
        targets = [n for n, s in specs.items() if s.output_node]
    if not targets and not wanted:
        issues.append(Issue("no_outputs", "the workflow has no output node (e.g. SaveImage or "
                                      "PreviewImage), so there is nothing to run"))

    # links: existence and types, gathered into one edge list
    links: dict[str, dict[str, tuple[str, int]]] = {}
    edges = []
    for node_id, spec in specs.items():
        entry = nodes[node_id]
        node_links = links[node_id] = {}
        for name, value in entry.inputs.items():
            if not is_link(value):
                continue
            inp = spec.input_by_name.get(name)
            resolved = _check_link(node_id, entry.type, name, inp, value, nodes, registry, issues)
            if resolved is not None:
                node_links[name] = resolved
                edges.append((resolved[0], node_id))
    order = _topological_order(nodes, edges)
    if order is None:  # a cycle: let networkx name the strongly connected components
        graph = nx.DiGraph()
        graph.add_nodes_from(nodes)
        graph.add_edges_from(edges)
        for component in nx.strongly_connected_components(graph):
            if len(component) > 1 or any(graph.has_edge(n, n) for n in component):
                ring = sorted(component, key=str)
                issues.append(Issue("cycle", "links form a cycle through nodes " + ", ".join(ring),
                                              ring[0], nodes[ring[0]].type))

    # the nodes the targets depend on (iterative walk; no recursion on deep graphs)
    needed: set[str] = set()
    stack = list(targets)
    while stack:
        node_id = stack.pop()
        if node_id in needed:
            continue
        needed.add(node_id)
        stack.extend(src for src, _ in links.get(node_id, {}).values())

    planned: dict[str, PlannedNode] = {}
    choice_memo: dict[int, list[str]] = {}
    for node_id in needed:
        spec = specs.get(node_id)
        if spec is None:
            continue
        entry = nodes[node_id]
        literals = _check_inputs(node_id, spec, entry.inputs, links[node_id], env, choice_memo, issues)
        hook = getattr(spec.cls, "validate_inputs", None)
        if hook is not None and literals is not None:
            try:
                problem = hook(**literals)
            except Exception as exc:  # a buggy hook is the node's fault, reported as such
                problem = f"validate_inputs failed: {exc}"
            if isinstance(problem, dict):  # {input name: message}: the problem is that input's
                issues.extend(Issue("bad_value", str(message), node_id, spec.name, str(name))
                              for name, message in problem.items() if message)
            elif problem:
                issues.append(Issue("bad_value", str(problem), node_id, spec.name))
        if literals is not None:
            planned[node_id] = PlannedNode(node_id, spec, literals, links[node_id])

    for issue in issues:  # a required input that a muted node fed: say so
        blocker = dropped.get((issue.node, issue.input)) if issue.kind == "missing_input" else None
        if blocker is not None:
            entry = plain_nodes[blocker]
            issue.message = (f"comes from node {blocker} ({entry.type}), which is muted: un-mute it or connect "
                             "another source" if entry.mode == "muted" else
                             f"comes from node {blocker} ({entry.type}), which is bypassed and has no input "
                             "of this type to pass through: connect one, or un-bypass it")
    if issues:
        origins = (workflow.meta or {}).get("origins") or {}  # set by the ComfyUI importer for subgraph nodes
        for issue in issues:
            issue.origin = origins.get(issue.node)
        return None, issues
    return Plan(workflow, planned, [n for n in order if n in planned], targets), []


def _topological_order(nodes, edges) -> list[str] | None:
    """Kahn's algorithm in document order; None if the links form a cycle."""
    indegree = dict.fromkeys(nodes, 0)
    children: dict[str, list[str]] = {}
    for src, dst in edges:
        indegree[dst] += 1
        children.setdefault(src, []).append(dst)
    ready = [n for n, d in indegree.items() if d == 0]
    order = []
    while ready:
        node_id = ready.pop()
        order.append(node_id)
        for child in children.get(node_id, ()):
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    return order if len(order) == len(indegree) else None


def validate_or_raise(workflow: Workflow, registry: Registry, env: Any = None,
                      outputs: list[str] | None = None) -> Plan:
    plan, issues = validate(workflow, registry, env, outputs)
    if issues:
        raise ValidationFailed(issues)
    return plan


def _output_type(nodes, registry, node_id, index: int, depth: int = 0):
    """An output's type, with a type variable (Output.type_from) resolved through the links feeding it."""
    spec = registry.get(nodes[node_id].type)
    output = spec.outputs[index]
    for name in output.type_from if depth < 64 else ():
        value = nodes[node_id].inputs.get(name)
        if is_link(value) and value["node"] in nodes and registry.get(nodes[value["node"]].type) is not None:
            src_spec = registry.get(nodes[value["node"]].type)
            out = value["output"]
            src_index = src_spec.output_index.get(out) if isinstance(out, str) else out
            if isinstance(src_index, int) and not isinstance(src_index, bool) and 0 <= src_index < len(src_spec.outputs):
                return _output_type(nodes, registry, value["node"], src_index, depth + 1)
    return output.type


def _check_link(node_id, node_type, name, inp: Input | None, value, nodes, registry, issues) -> tuple[str, int] | None:
    if inp is None:
        return None  # reported as unknown input by _check_inputs
    src_id, out = value["node"], value["output"]
    src = nodes.get(src_id)
    if src is None:
        issues.append(Issue("bad_link", f"links to node {src_id!r}, which does not exist", node_id, node_type, name))
        return None
    src_spec = registry.get(src.type)
    if src_spec is None:
        return None  # the unknown type is reported on its own node
    if isinstance(out, bool) or not isinstance(out, (int, str)):
        issues.append(Issue("bad_link", f"output must be a name or an index, not {out!r}", node_id, node_type, name))
        return None
    index = src_spec.output_index.get(out) if isinstance(out, str) else out
    if index is None or not 0 <= index < len(src_spec.outputs):
        have = ", ".join(f"{k}:{o.name}" for k, o in enumerate(src_spec.outputs)) or "none"
        issues.append(Issue("bad_link", f"links to output {out!r} of node {src_id} ({src.type}), "
                                      f"which has outputs {have}", node_id, node_type, name))
        return None
    out_type = _output_type(nodes, registry, src_id, index)
    if not inp.type.accepts(out_type):
        issues.append(Issue("type_mismatch", f"expects {inp.type.name}, but node {src_id} ({src.type}) "
                                      f"output {src_spec.outputs[index].name!r} gives {out_type.name}",
                                      node_id, node_type, name))
        return None
    return src_id, index


def _check_inputs(node_id, spec: NodeSpec, values: dict, links: dict, env, choice_memo, issues) -> dict | None:
    literals: dict[str, Any] = {}
    count = len(issues)
    for name in values:
        if name not in spec.input_by_name:
            known = ", ".join(i.name for i in spec.inputs) or "none"
            issues.append(Issue("unknown_input", f"{spec.name} has no input {name!r} (inputs: {known})",
                                          node_id, spec.name, name))
    for inp in spec.inputs:
        name = inp.name
        if name in links:
            continue
        if name not in values:
            if inp.has_default and inp.is_widget:
                literals[name] = inp.default
            elif not inp.optional:
                what = "a value or a link" if inp.is_widget else f"a link from a {inp.type.name} output"
                issues.append(Issue("missing_input", f"required input is missing: expected {what}",
                                              node_id, spec.name, name))
            continue
        value = values[name]
        if is_link(value):
            continue  # a bad link was already reported
        problem, value = _check_literal(inp, value, env, choice_memo)
        if problem:
            issues.append(Issue("bad_value", problem, node_id, spec.name, name))
        else:
            literals[name] = value
    return literals if len(issues) == count else None


_LITERAL_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")


def _check_literal(inp: Input, value: Any, env, choice_memo) -> tuple[str | None, Any]:
    kind = inp.type.name
    if not inp.is_widget:
        if kind == "*":  # ComfyUI's validate_inputs hands a literal to a "*" input unchanged
            return None, value
        widgets = [m for m in _LITERAL_TYPES if m in inp.type.members]
        if widgets and not inp.force_input:  # "FLOAT,MASK", "INT,FLOAT": a literal of one of the literal types
            checked = [_check_literal(replace(inp, type=w), value, env, choice_memo) for w in widgets]
            return next((c for c in checked if c[0] is None), checked[0])
        return f"expects a link from a {kind} output, got the literal {_short(value)}", value
    if kind == "INT":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected an integer, got {_short(value)}", value
        return _check_range(inp, value, integer=True), value
    if kind == "FLOAT":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a number, got {_short(value)}", value
        value = float(value)
        if not math.isfinite(value):
            return f"expected a finite number, got {value}", value
        return _check_range(inp, value, integer=False), value
    if kind == "STRING":
        return (None if isinstance(value, str) else f"expected a string, got {_short(value)}"), value
    if kind == "BOOLEAN":
        return (None if isinstance(value, bool) else f"expected true or false, got {_short(value)}"), value
    # COMBO
    key = id(inp)
    if key not in choice_memo:
        choice_memo[key] = resolve_choices(inp, env)
    choices = choice_memo[key]
    if not isinstance(value, str) or value not in choices:
        if inp.folder is not None and env is not None:
            searched = ", ".join(str(p) for p in env.folders.search_paths(inp.folder))
            listing = ", ".join(choices) if choices else "no files"
            return f"{_short(value)} is not a {inp.folder} file; searched {searched}; found {listing}", value
        shown = ", ".join(repr(c) for c in choices[:20]) + (" ..." if len(choices) > 20 else "")
        return f"{_short(value)} is not one of the choices: {shown or 'none available'}", value
    return None, value


def _check_range(inp: Input, value, integer: bool) -> str | None:
    if inp.min is not None and value < inp.min:
        return f"{value} is below the minimum {_num(inp.min)}"
    if inp.max is not None and value > inp.max:
        return f"{value} is above the maximum {_num(inp.max)}"
    if integer and inp.step and inp.step > 1:
        base = inp.min if inp.min is not None and abs(inp.min) < 2**53 else 0
        if (value - base) % inp.step:
            return f"{value} is not on the step grid: expected {_num(base)} plus a multiple of {_num(inp.step)}"
    return None


def _num(x) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _did_you_mean(name: str, registry: Registry) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(registry.specs), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else " (is its plugin installed? `nodegraph nodes` lists what is loaded)"
