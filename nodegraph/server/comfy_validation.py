"""ComfyUI's prompt validation on ComfyUI's routes: which outputs run, and errors in its vocabulary.

Source: ComfyUI 0.8 execution.py validate_prompt / validate_inputs, server.py post_prompt.

- A node without class_type, or of an unknown class, refuses the whole prompt (`invalid_prompt`).
- The outputs are the output nodes (those in partial_execution_targets, when given); none:
  `prompt_no_outputs`.
- Each output is valid when it and everything it links to is; the valid ones are queued and the
  answer is 200 with `node_errors` for the rest. Only when no output is valid is the prompt
  refused (400, `prompt_outputs_failed_validation`).
- ComfyUI converts literal INT / FLOAT / STRING / BOOLEAN inputs (int(), float(), str(), bool())
  and unwraps {"__value__": v}, in the prompt it stores; inputs a node does not declare are ignored.
- Deliberate difference: a missing widget input takes its declared default (ComfyUI reports
  required_input_missing); a missing link input is reported as ComfyUI does.

Our validator (validate.py) finds the problems; `comfy_error` is the one place that turns each
validate.Issue into ComfyUI's error record {type, message, details, extra_info}. Our native API
keeps validate.Issue as it is.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from ..node import resolve_choices
from ..validate import Issue, validate
from ..workflow import Workflow, is_link

CONVERSIONS = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}
MAX_LISTED_CHOICES = 20  # longer choice lists are not sent back (validate_inputs)


@dataclass
class CheckedPrompt:
    """What to queue, or why not."""

    doc: Any = None  # the document to queue (ComfyUI's conversions applied)
    prompt: dict | None = None  # an API-format prompt as ComfyUI stores and embeds it
    outputs: list[str] = field(default_factory=list)  # the valid outputs, in prompt order
    node_errors: dict = field(default_factory=dict)
    error: dict | None = None  # set: refuse the prompt with it (400)


def record(kind: str, message: str, details: str = "", extra_info: dict | None = None) -> dict:
    return {"type": kind, "message": message, "details": details, "extra_info": extra_info or {}}


def check_prompt(state, doc, targets: list[str] | None) -> CheckedPrompt:
    registry, env = state.env.registry, state.env
    out = CheckedPrompt(doc=doc)
    if state.format_of(doc) == "comfy_api":
        refused = _class_problem(doc, registry)
        if refused is not None:
            out.error = refused
            return out
        out.prompt = converted(doc, registry)
        out.doc = {nid: {**entry, "inputs": _declared(entry, registry)} for nid, entry in out.prompt.items()}
    try:
        workflow = state.parse(out.doc)
    except Exception as exc:  # service.SubmitError (format): not a workflow we can read
        out.error = record("invalid_prompt", getattr(exc, "message", str(exc)), getattr(exc, "message", str(exc)))
        return out
    for node_id, entry in workflow.nodes.items():
        if registry.get(entry.type) is None:
            out.error = record("invalid_prompt", f"Cannot execute because node {entry.type} does not exist.",
                               f"Node ID '#{node_id}'")
            return out
    wanted = [str(t) for t in targets] if targets is not None else workflow.outputs
    outputs = [nid for nid, entry in workflow.nodes.items()
               if registry.get(entry.type).output_node and (wanted is None or nid in wanted)]
    if not outputs:
        out.error = record("prompt_no_outputs", "Prompt has no outputs")
        return out
    _, issues = validate(workflow, registry, env, outputs)
    upstream = {o: upstream_of(workflow, o) for o in outputs}
    bad = [o for o in outputs if any(i.node is None or i.node in upstream[o] for i in issues)]
    for issue in issues:
        if issue.node is None:
            continue
        entry = out.node_errors.setdefault(str(issue.node), {"errors": [], "dependent_outputs": [],
                                                             "class_type": workflow.nodes[issue.node].type})
        entry["errors"].append(comfy_error(issue, workflow, registry, env))
    for node_id, entry in out.node_errors.items():
        entry["dependent_outputs"] = [o for o in bad if node_id in upstream[o]]
    out.outputs = [o for o in outputs if o not in bad]
    if not out.outputs:
        lines = [f"{e['message']}: {e['details']}" for entry in out.node_errors.values() for e in entry["errors"]]
        lines += [f"{i.message}: " for i in issues if i.node is None]
        out.error = record("prompt_outputs_failed_validation", "Prompt outputs failed validation", "\n".join(lines))
    return out


def _class_problem(prompt: dict, registry) -> dict | None:
    for node_id, entry in prompt.items():
        if not isinstance(entry, dict) or "class_type" not in entry:
            return record("invalid_prompt", "Cannot execute because a node is missing the class_type property.",
                          f"Node ID '#{node_id}'")
        if registry.get(entry["class_type"]) is None:
            return record("invalid_prompt", f"Cannot execute because node {entry['class_type']} does not exist.",
                          f"Node ID '#{node_id}'")
    return None


def _declared(entry: dict, registry) -> Any:
    """A node's inputs without those its class does not declare (ComfyUI never reads them)."""
    inputs = entry.get("inputs", {})
    if not isinstance(inputs, dict):
        return inputs
    declared = registry.get(entry["class_type"]).input_by_name
    return {name: value for name, value in inputs.items() if name in declared}


def converted(prompt: dict, registry) -> dict:
    """The prompt with ComfyUI's literal conversions applied (a copy; values that do not convert stay)."""
    prompt = copy.deepcopy(prompt)
    for entry in prompt.values():
        spec = registry.get(entry["class_type"])
        inputs = entry.setdefault("inputs", {})
        if not isinstance(inputs, dict):
            continue
        for name, value in list(inputs.items()):
            inp = spec.input_by_name.get(name)
            if inp is None or isinstance(value, list):
                continue
            if isinstance(value, dict) and "__value__" in value:
                value = inputs[name] = value["__value__"]
            convert = CONVERSIONS.get(inp.type.name)
            if convert is not None:
                try:
                    inputs[name] = convert(value)
                except (TypeError, ValueError, OverflowError):
                    pass  # reported as invalid_input_type
    return prompt


def upstream_of(workflow: Workflow, output: str) -> set[str]:
    """The output node and every node it links to, directly or not."""
    seen: set[str] = set()
    stack = [output]
    while stack:
        node_id = stack.pop()
        if node_id in seen or node_id not in workflow.nodes:
            continue
        seen.add(node_id)
        stack.extend(v["node"] for v in workflow.nodes[node_id].inputs.values() if is_link(v))
    return seen


def input_config(inp, env) -> list:
    """ComfyUI's (input_type, extra_info) for an input: [type or choices, options]."""
    from .comfy_compat import input_entry

    entry = input_entry(inp, env)
    return entry if len(entry) == 2 else [entry[0], {}]


# --- one Issue as ComfyUI's error ---------------------------------------------------------------
def comfy_error(issue: Issue, workflow: Workflow | None, registry, env) -> dict:
    """validate.Issue -> ComfyUI's error record (validate_inputs' vocabulary)."""
    name = issue.input
    entry = workflow.nodes.get(issue.node) if workflow is not None and issue.node is not None else None
    spec = registry.get(entry.type) if entry is not None else None
    inp = spec.input_by_name.get(name) if spec is not None and name else None
    if issue.kind == "missing_input":
        return record("required_input_missing", "Required input is missing", name or "", {"input_name": name})
    if issue.kind == "no_outputs":
        return record("prompt_no_outputs", "Prompt has no outputs")
    if issue.kind == "format":
        return record("invalid_prompt", issue.message, issue.message)
    if issue.kind == "unknown_type":
        return record("invalid_prompt", f"Cannot execute because node {issue.node_type} does not exist.",
                      f"Node ID '#{issue.node}'")
    if inp is not None and name in entry.inputs:
        value = entry.inputs[name]
        if issue.kind == "type_mismatch" and is_link(value):
            return _type_mismatch(name, inp, value, workflow, registry, env)
        if issue.kind == "bad_link":
            return record("bad_linked_input", "Bad linked input", f"{name}: {issue.message}",
                          {"input_name": name, "input_config": input_config(inp, env),
                           "received_value": [value["node"], value["output"]] if is_link(value) else value})
        if issue.kind == "bad_value" and not is_link(value):
            return _bad_value(name, inp, value, issue, env)
    if issue.kind == "bad_value":  # a node's own validate_inputs said no
        return record("custom_validation_failed", "Custom validation failed for node",
                      f"{name} - {issue.message}" if name else issue.message, {"input_name": name} if name else {})
    # anything else (a cycle, an input the node does not declare ...) ComfyUI meets as an exception
    return record("exception_during_validation", "Exception when validating node", str(issue),
                  {"exception_type": issue.kind, "traceback": [], **({"input_name": name} if name else {})})


def _type_mismatch(name, inp, value, workflow, registry, env) -> dict:
    src = workflow.nodes[value["node"]]
    src_spec = registry.get(src.type)
    out = value["output"]
    index = src_spec.output_index.get(out) if isinstance(out, str) else out
    received = src_spec.outputs[index].type.name
    return record("return_type_mismatch", "Return type mismatch between linked nodes",
                  f"{name}, received_type({received}) mismatch input_type({inp.type.name})",
                  {"input_name": name, "input_config": input_config(inp, env), "received_type": received,
                   "linked_node": [value["node"], index]})


def _bad_value(name, inp, value, issue: Issue, env) -> dict:
    config = input_config(inp, env)
    kind = inp.type.name
    extra = {"input_name": name, "input_config": config, "received_value": value}
    if kind == "COMBO":
        choices = resolve_choices(inp, env)
        listed = f"(list of length {len(choices)})" if len(choices) > MAX_LISTED_CHOICES else str(choices)
        if len(choices) > MAX_LISTED_CHOICES:
            extra["input_config"] = None
        return record("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {listed}", extra)
    if kind in ("INT", "FLOAT") and not isinstance(value, bool) and isinstance(value, (int, float)):
        if inp.min is not None and value < inp.min:
            return record("value_smaller_than_min", f"Value {value} smaller than min of {inp.min}", name, extra)
        if inp.max is not None and value > inp.max:
            return record("value_bigger_than_max", f"Value {value} bigger than max of {inp.max}", name, extra)
        # ComfyUI does not check the step grid or finiteness; ours does
        return record("custom_validation_failed", "Custom validation failed for node", f"{name} - {issue.message}",
                      {"input_name": name})
    return record("invalid_input_type", f"Failed to convert an input value to a {kind} value",
                  f"{name}, {value}, {issue.message}", {**extra, "exception_message": issue.message})


def submit_error(err, registry, env) -> tuple[dict, dict]:
    """A service.SubmitError met after check_prompt (e.g. a prompt id already used) as (error, node_errors)."""
    if not err.issues:
        return record("invalid_prompt", err.message, err.message), {}
    per_node: dict[str, dict] = {}
    for issue in err.issues:
        if issue.node is None:
            return comfy_error(issue, None, registry, env), {}
        entry = per_node.setdefault(str(issue.node), {"errors": [], "dependent_outputs": [],
                                                      "class_type": issue.node_type})
        entry["errors"].append(comfy_error(issue, None, registry, env))
    return record("prompt_outputs_failed_validation", "Prompt outputs failed validation"), per_node

