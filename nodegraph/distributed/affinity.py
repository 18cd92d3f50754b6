"""Which model files a job loads, read from its workflow's ModelFile inputs (literal values of
inputs declared with a `folder`): the scheduler sends a job to a worker that already holds them."""
from __future__ import annotations


def model_files_of(workflow: dict, registry) -> frozenset[tuple[str, str]]:
    """{(folder kind, file name)} of the literal model-file inputs of a native workflow document."""
    found = set()
    for node in (workflow.get("nodes") or {}).values():
        if not isinstance(node, dict):
            continue
        spec = registry.specs.get(node.get("type"))
        if spec is None:
            continue
        inputs = node.get("inputs") or {}
        for inp in spec.inputs:
            value = inputs.get(inp.name)
            if inp.folder and isinstance(value, str):
                found.add((inp.folder, value))
    return frozenset(found)


def pick_worker(idle: list, wanted: frozenset) -> object | None:
    """The idle worker holding most of `wanted` (all of it first); ties and no overlap: the one
    that has run the fewest jobs. Workers have `.models` (a set) and `.jobs_run`."""
    if not idle:
        return None
    return max(idle, key=lambda w: (len(wanted & w.models), -w.jobs_run, -w.index))
