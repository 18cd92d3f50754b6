"""Engine overhead on a graph of trivial nodes: validate + execute cold, and a fully cached re-run.

    python bench/engine_overhead.py [--nodes 1000] [--repeat 5]

The graph: 10 chains of MathInt nodes fed by PrimitiveInt constants, each chain ending in a
PreviewAny output node, so every node is needed. Prints a table (medians over --repeat runs).
Targets (issue 2): under 100 ms cold and under 20 ms fully cached per 1,000 nodes on 2 cores.
"""
from __future__ import annotations

import argparse
import statistics
import time

from nodegraph.environment import Environment
from nodegraph.executor import Executor
from nodegraph.folders import Folders
from nodegraph.registry import default_registry
from nodegraph.validate import validate
from nodegraph.formats import parse_workflow


def build(n_nodes: int, chains: int = 10) -> dict:
    nodes: dict[str, dict] = {}
    per_chain = n_nodes // chains
    for c in range(chains):
        prev = f"c{c}_0"
        nodes[prev] = {"type": "PrimitiveInt", "inputs": {"value": c}}
        for k in range(1, per_chain - 1):
            node_id = f"c{c}_{k}"
            nodes[node_id] = {"type": "MathInt", "inputs": {"a": {"node": prev, "output": "INT"}, "b": k, "op": "add"}}
            prev = node_id
        nodes[f"c{c}_out"] = {"type": "PreviewAny", "inputs": {"source": {"node": prev, "output": 0}}}
    return {"version": 1, "nodes": nodes}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    registry = default_registry(plugins_dir=None)
    doc = build(args.nodes)
    rows = {"parse (pydantic)": [], "validate + plan": [], "cold run (validate + execute)": [],
            "fully cached re-run": []}
    for _ in range(args.repeat):
        env = Environment(registry=registry, folders=Folders("/tmp/nodegraph-bench"))
        ex = Executor(env)
        rows["parse (pydantic)"].append(timed(lambda: parse_workflow(doc)))
        wf = parse_workflow(doc)
        rows["validate + plan"].append(timed(lambda: validate(wf, registry, env)))
        result = None

        def cold():
            nonlocal result
            result = ex.run(doc)
        rows["cold run (validate + execute)"].append(timed(cold))
        assert result.status == "success" and len(result.executed) == len(doc["nodes"])

        def warm():
            nonlocal result
            result = ex.run(doc)
        rows["fully cached re-run"].append(timed(warm))
        assert result.executed == []
    print(f"engine overhead, {len(doc['nodes'])} nodes, median of {args.repeat}")
    print(f"{'phase':34} {'ms':>9} {'ms / 1000 nodes':>16}")
    for name, samples in rows.items():
        ms = statistics.median(samples)
        print(f"{name:34} {ms:9.2f} {ms * 1000 / len(doc['nodes']):16.2f}")


if __name__ == "__main__":
    main()
