"""Try public ComfyUI custom node packs: load each as `nodegraph nodes --plugins` would, then run
every node whose inputs nodegraph can make up on synthetic inputs, and print a table per pack.

    python bench/comfy_packs_try.py PACKS_DIR [--only NAME ...] [--timeout 20] [--json OUT.json] [--markdown]

PACKS_DIR holds the packs as they are cloned (one folder each); they are third-party code and stay
out of this repository (e.g. /tmp/packs). Each pack is loaded in its own Python process (packs
change sys.modules; one that hangs or crashes must not take the others down), through the registry's
plugin discovery, beside the built-in packs, in a fresh folder with ComfyUI's models/, input/,
output/ and temp/ (the pack's requirements must be importable: install them, or put a --target
folder on PYTHONPATH).

A node is run when each of its required inputs is IMAGE, MASK, LATENT or a widget (INT, FLOAT,
STRING, BOOLEAN, COMBO), or a comma type with one of those ("IMAGE,MASK": the first): a 64x48 picture (colour gradients and a white disc), a mask of the disc,
a 4-channel latent of that picture's size, and each widget's default (a COMBO's default, else its
first choice; without a default, what ComfyUI's frontend puts in the widget: min or 0, "", false),
optional widgets included, as the frontend sends them all. Optional inputs of other types are left out. The node runs through nodegraph's
Executor, each output shown by a PreviewAny (so the node runs as an ancestor of the requested
outputs); an input that takes only links (forceInput) gets one from a Primitive node. "ran" means it returned without an error; the values are
not checked (default widgets are not always meaningful), "failed" prints the error's first line.

Then the CHECKS whose node types the pack loaded run: workflows with a known answer (a loop through node
expansion summing 5..1 must give 15), compared with the value.

The version column is the pack's pyproject.toml version and, when present, the commit of its .git
HEAD or of a COMMIT file beside its __init__.py (write one when you export a clone without .git).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Workflows with a known answer, run when every node type they use is loaded: (name, ComfyUI API prompt,
# [node id, output index], expected value). Written here from each pack's README / node declarations.
CHECKS = [
    # BadCafeCode's execution-inversion-demo: a for loop through node expansion (ForLoopOpen / ForLoopClose
    # expand into WhileLoopOpen / WhileLoopClose, which copy the body each round): total += remaining for
    # remaining = 5..1, so 0 + 5 + 4 + 3 + 2 + 1 = 15
    ("for loop 5..1 summing remaining", {
        "0": {"class_type": "PrimitiveInt", "inputs": {"value": 0}},
        "1": {"class_type": "ForLoopOpen", "inputs": {"remaining": 5, "initial_value1": ["0", 0]}},
        "2": {"class_type": "IntMathOperation", "inputs": {"a": ["1", 2], "b": ["1", 1], "operation": "add"}},
        "3": {"class_type": "ForLoopClose", "inputs": {"flow_control": ["1", 0], "initial_value1": ["2", 0]}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}}}, ["3", 0], 15),
    # the same pack's while loop, with its own condition node: value doubles while it is below 100 (1 -> 128)
    ("while loop doubling to 128", {
        "0": {"class_type": "PrimitiveInt", "inputs": {"value": 1}},
        "1": {"class_type": "WhileLoopOpen", "inputs": {"condition": True, "initial_value0": ["0", 0]}},
        "2": {"class_type": "IntMathOperation", "inputs": {"a": ["1", 1], "b": 2, "operation": "multiply"}},
        "3": {"class_type": "IntConditions", "inputs": {"a": ["2", 0], "b": 100, "operation": "<"}},
        "4": {"class_type": "WhileLoopClose", "inputs": {"flow_control": ["1", 0], "condition": ["3", 0],
                                                         "initial_value0": ["2", 0]}},
        "5": {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}}}, ["4", 0], 128),
]

RUNNABLE = {"IMAGE", "MASK", "LATENT", "INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
PRIMITIVES = {"INT": "PrimitiveInt", "FLOAT": "PrimitiveFloat", "STRING": "PrimitiveString", "BOOLEAN": "PrimitiveBoolean"}
WIDTH, HEIGHT = 64, 48


# --- one pack, in a child process ------------------------------------------------------------
def tried_kind(inp) -> str:
    """The type the tool feeds an input: its own, or for a comma type ("IMAGE,MASK" of V3's MatchType /
    MultiType) its first member the tool can make."""
    return next((kind for kind in inp.type.name.split(",") if kind in RUNNABLE), inp.type.name)


def synthetic_sources():
    """Source nodes for the synthetic inputs, declared with nodegraph's public API."""
    import torch

    from nodegraph import IMAGE, LATENT, MASK, Output, node

    def picture():
        y = torch.linspace(0, 1, HEIGHT).view(HEIGHT, 1).expand(HEIGHT, WIDTH)
        x = torch.linspace(0, 1, WIDTH).view(1, WIDTH).expand(HEIGHT, WIDTH)
        disc = disc_mask()[0]
        image = torch.stack([x, y, 1 - x], dim=-1) * 0.8
        image[disc > 0] = 1.0
        return image.unsqueeze(0).contiguous()

    def disc_mask():
        yy, xx = torch.meshgrid(torch.arange(HEIGHT), torch.arange(WIDTH), indexing="ij")
        inside = (xx - WIDTH * 0.55) ** 2 + (yy - HEIGHT * 0.45) ** 2 <= (HEIGHT * 0.3) ** 2
        return inside.float().unsqueeze(0)

    @node(category="_try")
    class TrySyntheticImage:
        inputs = []
        outputs = [Output("IMAGE", IMAGE)]

        def run(self, ctx):
            return picture()

    @node(category="_try")
    class TrySyntheticMask:
        inputs = []
        outputs = [Output("MASK", MASK)]

        def run(self, ctx):
            return disc_mask()

    @node(category="_try")
    class TrySyntheticLatent:
        inputs = []
        outputs = [Output("LATENT", LATENT)]

        def run(self, ctx):
            generator = torch.Generator().manual_seed(0)
            return ({"samples": torch.randn(1, 4, HEIGHT // 8, WIDTH // 8, generator=generator)},)

    return {"IMAGE": TrySyntheticImage, "MASK": TrySyntheticMask, "LATENT": TrySyntheticLatent}


def widget_value(inp, env):
    from nodegraph.node import resolve_choices

    kind = inp.type.name
    if kind == "COMBO":
        choices = resolve_choices(inp, env)
        if inp.has_default and (not choices or inp.default in choices):
            return inp.default
        if not choices:
            raise LookupError(f"COMBO {inp.name} has no choices")
        return choices[0]
    if inp.has_default:
        return inp.default
    return {"INT": int(inp.min or 0), "FLOAT": float(inp.min or 0.0), "STRING": "", "BOOLEAN": False}[kind]


def first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= 160 else line[:157] + "..."


class NodeTimeout(Exception):
    pass


def try_pack(path: Path, timeout: float) -> dict:
    from nodegraph.environment import Environment
    from nodegraph.executor import Executor
    from nodegraph.folders import Folders
    from nodegraph.registry import default_registry
    from nodegraph.validate import ValidationFailed

    registry = default_registry(None)
    builtin = set(registry.specs)
    for cls in synthetic_sources().values():
        registry.add_class(cls, "comfy_packs_try")
    started = time.perf_counter()
    registry.load_plugin(path)
    report = {"pack": path.name, "import_seconds": round(time.perf_counter() - started, 2), "nodes": {},
              "problems": [first_line(p.message) for p in registry.problems]}
    load = next((l for l in registry.loads if l.name == path.stem), None)
    report["import_failed"] = bool(load is None or load.failed)
    pack_nodes = [name for name, spec in registry.specs.items()
                  if name not in builtin and not spec.name.startswith("TrySynthetic")]
    report["loaded"] = len(pack_nodes)
    env = Environment(registry=registry, folders=Folders(Path.cwd()))  # the parent made a fresh folder
    executor = Executor(env)

    def alarm(signum, frame):
        raise NodeTimeout(f"timed out after {timeout:g} s")

    signal.signal(signal.SIGALRM, alarm)
    for name in sorted(pack_nodes):
        spec = registry.specs[name]
        needs = sorted({i.type.name for i in spec.inputs if not i.optional and tried_kind(i) not in RUNNABLE})
        if needs:
            report["nodes"][name] = {"status": "skipped", "why": "needs " + ", ".join(needs)}
            continue
        nodes, inputs = {}, {}
        try:
            for inp in spec.inputs:
                kind = tried_kind(inp)
                if kind in ("IMAGE", "MASK", "LATENT"):
                    if inp.optional:
                        continue
                    nodes.setdefault(kind, {"type": f"TrySynthetic{kind.title()}", "inputs": {}})
                    inputs[inp.name] = {"node": kind, "output": 0}
                elif kind in RUNNABLE and inp.is_widget:  # optional ones too: ComfyUI's frontend sends every widget
                    inputs[inp.name] = widget_value(inp, env)
                elif kind in PRIMITIVES and not inp.optional:  # forceInput: a link from our primitive node
                    value = inp.default if inp.has_default else {"STRING": "a red circle", "BOOLEAN": False}.get(kind, 0)
                    nodes[f"in_{inp.name}"] = {"type": PRIMITIVES[kind], "inputs": {"value": value}}
                    inputs[inp.name] = {"node": f"in_{inp.name}", "output": 0}
            nodes["target"] = {"type": name, "inputs": inputs}
            # every output goes to a PreviewAny, so the node runs as a requested output's ancestor
            for index, _ in enumerate(spec.outputs):
                nodes[f"out{index}"] = {"type": "PreviewAny", "inputs": {"source": {"node": "target", "output": index}}}
            wanted = [n for n in nodes if n.startswith("out")] or ["target"]
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                result = executor.run({"version": 1, "nodes": nodes}, outputs=wanted)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except ValidationFailed as exc:
            report["nodes"][name] = {"status": "failed", "why": "invalid: " + first_line(exc.issues[0].message)}
            continue
        except BaseException as exc:  # a pack may raise anything, SystemExit included
            report["nodes"][name] = {"status": "failed", "why": f"{type(exc).__name__}: {first_line(exc)}"}
            continue
        if result.status == "success":
            report["nodes"][name] = {"status": "ran"}
        else:
            error = result.errors[0] if result.errors else {"exception_type": result.status, "exception_message": ""}
            report["nodes"][name] = {"status": "failed", "why": f"{error['exception_type'].rsplit('.', 1)[-1]}: "
                                                                 f"{first_line(error['exception_message'])}"}
    report["checks"] = run_checks(registry, executor)
    return report


def run_checks(registry, executor) -> dict:
    """CHECKS whose node types are all loaded: the answer, or the error."""
    from nodegraph.formats import comfy_api

    out = {}
    for name, prompt, (node_id, index), expected in CHECKS:
        if not all(n["class_type"] in registry.specs for n in prompt.values()):
            continue
        try:
            result = executor.run(comfy_api.to_native(prompt))
        except BaseException as exc:  # noqa: BLE001 - a pack may raise anything
            out[name] = {"status": "failed", "why": f"{type(exc).__name__}: {first_line(exc)}"}
            continue
        if result.status != "success":
            error = result.errors[0] if result.errors else {"exception_type": result.status, "exception_message": ""}
            out[name] = {"status": "failed", "why": f"{error['exception_type'].rsplit('.', 1)[-1]}: "
                                                    f"{first_line(error['exception_message'])}"}
            continue
        got = result.value(node_id, index)
        out[name] = {"status": "ran" if got == expected else "wrong", "got": repr(got), "expected": repr(expected),
                     "nodes_run": len(result.executed)}
    return out


# --- the parent: one child per pack, the tables --------------------------------------------------
def pack_version(path: Path) -> str:
    version = ""
    pyproject = path / "pyproject.toml"
    if pyproject.is_file():
        try:
            import tomllib

            version = str(tomllib.loads(pyproject.read_text()).get("project", {}).get("version", ""))
        except Exception:
            version = ""
    commit = ""
    if (path / "COMMIT").is_file():
        commit = (path / "COMMIT").read_text().split()[0][:7]
    elif (path / ".git").exists():
        done = subprocess.run(["git", "-C", str(path), "rev-parse", "--short=7", "HEAD"], capture_output=True, text=True)
        commit = done.stdout.strip()
    return " ".join(x for x in (version, commit and f"@{commit}") if x) or "?"


def run_child(path: Path, timeout: float, pack_timeout: float) -> dict:
    root = Path(__file__).resolve().parent.parent
    with tempfile.NamedTemporaryFile(suffix=".json") as out, tempfile.TemporaryDirectory(prefix="comfy_packs_try_") as home:
        for sub in ("models", "input", "output", "temp"):  # ComfyUI's folders, where the pack's import looks
            (Path(home) / sub).mkdir()
        cmd = [sys.executable, str(Path(__file__).resolve()), "--one", str(path), "--timeout", str(timeout),
               "--json", out.name]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}  # nodes that download weights fail at once
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=pack_timeout, cwd=home, env=env)
        except subprocess.TimeoutExpired:
            return {"pack": path.name, "crashed": f"the pack's process ran past {pack_timeout:g} s", "nodes": {}}
        text = Path(out.name).read_text()
        if done.returncode != 0 or not text:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return {"pack": path.name, "crashed": f"exit {done.returncode}: {tail[0]}", "nodes": {}}
        return json.loads(text)


def print_table(report: dict) -> None:
    nodes = report["nodes"]
    ran = [n for n, r in nodes.items() if r["status"] == "ran"]
    failed = {n: r for n, r in nodes.items() if r["status"] == "failed"}
    skipped = {n: r for n, r in nodes.items() if r["status"] == "skipped"}
    print(f"\n== {report['pack']} ({report.get('version', '?')})")
    if report.get("crashed"):
        print(f"   the pack's process died: {report['crashed']}")
        return
    state = "IMPORT FAILED" if report["import_failed"] else f"imported in {report['import_seconds']:.1f} s"
    print(f"   {state}; loaded {report['loaded']} nodes; tried {len(ran) + len(failed)}: ran {len(ran)}, "
          f"failed {len(failed)}; skipped {len(skipped)} (inputs we do not synthesise)")
    for problem in report["problems"]:
        print(f"   problem: {problem}")
    width = max((len(n) for n in nodes), default=10)
    for name in sorted(nodes):
        r = nodes[name]
        if r["status"] == "skipped":
            continue
        print(f"   {name:<{width}}  {r['status']:<6}  {r.get('why', '')}")
    needs: dict[str, int] = {}
    for r in skipped.values():
        needs[r["why"]] = needs.get(r["why"], 0) + 1
    for why, count in sorted(needs.items(), key=lambda kv: -kv[1]):
        print(f"   skipped {count:3d}: {why}")
    for name, r in report.get("checks", {}).items():
        detail = r.get("why") or f"got {r['got']}, expected {r['expected']} ({r['nodes_run']} nodes ran)"
        print(f"   check {name!r}: {r['status']}  {detail}")


def markdown_row(report: dict) -> str:
    """The README table's row: the why column counts the failures by error kind (a person reads the
    per-node table above it to say more); the last column is left for what the pack needed."""
    nodes = report["nodes"]
    ran = sum(r["status"] == "ran" for r in nodes.values())
    tried = sum(r["status"] != "skipped" for r in nodes.values())
    if report.get("crashed"):
        return f"| {report['pack']} ({report.get('version', '?')}) | crashed: {report['crashed']} | | | |"
    if report["import_failed"]:
        why = report["problems"][0] if report["problems"] else "import failed"
        return f"| {report['pack']} ({report.get('version', '?')}) | import fails: {why} | | | |"
    kinds: dict[str, int] = {}
    for r in nodes.values():
        if r["status"] == "failed":
            kind = r["why"].split(":")[0]
            kinds[kind] = kinds.get(kind, 0) + 1
    why = "; ".join(f"{count} {kind}" for kind, count in sorted(kinds.items(), key=lambda kv: -kv[1]))
    checks = report.get("checks", {})
    if checks:
        passed = sum(r["status"] == "ran" for r in checks.values())
        why = "; ".join(filter(None, [why, f"workflow checks: {passed} of {len(checks)} gave the expected value"]))
    return f"| {report['pack']} ({report.get('version', '?')}) | {report['loaded']} | {ran} of {tried} | {why} | |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packs_dir", nargs="?")
    parser.add_argument("--only", nargs="*", help="pack folder names to try (default: all)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per node")
    parser.add_argument("--pack-timeout", type=float, default=600.0, help="seconds per pack")
    parser.add_argument("--json", help="write the reports here")
    parser.add_argument("--markdown", action="store_true", help="also print the README table's rows")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child: one pack
    args = parser.parse_args(argv)
    if args.one:
        os.environ.setdefault("NODEGRAPH_DEVICE", "cpu")
        report = try_pack(Path(args.one).resolve(), args.timeout)
        Path(args.json).write_text(json.dumps(report))
        return 0
    if not args.packs_dir:
        parser.error("PACKS_DIR is required")
    folder = Path(args.packs_dir).resolve()
    packs = [p for p in sorted(folder.iterdir(), key=lambda p: p.name.lower())
             if (p / "__init__.py").is_file() and (not args.only or p.name in args.only)]
    reports = []
    for path in packs:
        report = run_child(path, args.timeout, args.pack_timeout)
        report["version"] = pack_version(path)
        reports.append(report)
        print_table(report)
        sys.stdout.flush()
    if args.markdown:
        print("\n| pack (commit) | nodes loaded | ran on synthetic inputs | what failed, and why | what the pack needed |\n"
              "|---|---|---|---|---|")
        for report in reports:
            print(markdown_row(report))
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=1))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
