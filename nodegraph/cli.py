"""Command line: `nodegraph run | validate | nodes | convert | serve`."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .environment import Environment
from .executor import Executor
from .formats import WorkflowFormatError, load_workflow
from .validate import ValidationFailed, validate
from .workflow import is_link


def _environment(args) -> Environment:
    env = Environment.create(base=".", plugins_dir=args.plugins, models=args.models_dir,
                             output=getattr(args, "output_dir", None), input=getattr(args, "input_dir", None),
                             device=getattr(args, "device", None))
    for problem in env.registry.problems:
        print(f"warning: {problem.source}: {problem.message}", file=sys.stderr)
        if problem.traceback and args.verbose:
            print(problem.traceback, file=sys.stderr)
    return env


def _apply_sets(workflow, sets: list[str]) -> None:
    """--set NODE.INPUT=VALUE; NODE is a node id or title; VALUE is JSON, or a plain string."""
    for item in sets:
        target, sep, raw = item.partition("=")
        node_ref, dot, input_name = target.rpartition(".")
        if not sep or not dot:
            raise SystemExit(f"--set {item!r}: expected NODE.INPUT=VALUE")
        matches = [nid for nid, n in workflow.nodes.items() if nid == node_ref or n.title == node_ref]
        if len(matches) != 1:
            raise SystemExit(f"--set {item!r}: {'no' if not matches else 'more than one'} node with id or title {node_ref!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        entry = workflow.nodes[matches[0]]
        if is_link(entry.inputs.get(input_name)):
            raise SystemExit(f"--set {item!r}: input {input_name!r} of node {matches[0]} is a link, not a value")
        entry.inputs[input_name] = value


def _load(args, env):
    try:
        return load_workflow(args.workflow, env.registry)
    except (WorkflowFormatError, OSError) as exc:
        raise SystemExit(f"error: {exc}")


def cmd_run(args) -> int:
    from tqdm import tqdm

    env = _environment(args)
    workflow = _load(args, env)
    _apply_sets(workflow, args.set or [])
    bar = None
    current = {}

    def on_event(event: str, data: dict) -> None:
        nonlocal bar
        if args.quiet:
            return
        if event == "executing" and data.get("node") is not None:
            node_id = data["node"]
            entry = workflow.nodes[node_id]
            current["label"] = f"{node_id} {entry.title or entry.type}"
            if bar is not None:
                bar.close()
                bar = None
            print(f"▶ {current['label']}", file=sys.stderr)
        elif event == "progress":
            if bar is None:
                bar = tqdm(total=data["max"], desc=f"  {current.get('label', '')}", unit="step", file=sys.stderr,
                           leave=False)
            bar.n = data["value"]
            bar.refresh()
        elif event == "execution_cached" and data.get("nodes"):
            print(f"cached: {', '.join(data['nodes'])}", file=sys.stderr)
        elif event == "warning":
            print(f"⚠ node {data['node']} ({data['node_type']}): {data['message']}", file=sys.stderr)
        elif event == "execution_error":
            print(f"✗ node {data['node_id']} ({data['node_type']}): {data['exception_message']}", file=sys.stderr)
            if args.verbose:
                print("".join(data["traceback"]), file=sys.stderr)

    started = time.perf_counter()
    try:
        result = Executor(env).run(workflow, on_event=on_event)
    except ValidationFailed as exc:
        print("error: the workflow is invalid:", file=sys.stderr)
        for issue in exc.issues:
            print(f"  - {issue}", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - started
    print(f"{result.status} in {elapsed:.2f} s: {len(result.executed)} node(s) run, {len(result.cached)} cached"
          + (f", {len(result.skipped)} skipped" if result.skipped else ""))
    for node_id, ui in result.outputs.items():
        for image in ui.get("images", []):
            folder = env.folders.dir_for(image["type"]) / image.get("subfolder", "")
            print(f"  node {node_id}: wrote {folder / image['filename']}")
        for text in ui.get("text", []):
            print(f"  node {node_id}: {text}")
    for error in result.errors:
        print(f"  node {error['node_id']} ({error['node_type']}) failed: {error['exception_message']}")
    return {"success": 0, "error": 1, "interrupted": 130}[result.status]


def cmd_validate(args) -> int:
    env = _environment(args)
    workflow = _load(args, env)
    _, issues = validate(workflow, env.registry, env)
    if args.json:
        print(json.dumps([i.to_json() for i in issues], indent=2))
    elif issues:
        print(f"{args.workflow}: {len(issues)} problem(s):")
        for issue in issues:
            print(f"  - {issue}")
    else:
        print(f"{args.workflow}: valid ({len(workflow.nodes)} nodes)")
    return 1 if issues else 0


def cmd_nodes(args) -> int:
    env = _environment(args)
    schemas = env.registry.schemas(env)
    if args.json:
        print(json.dumps(schemas, indent=2, default=str))
        return 0
    by_category: dict[str, list[dict]] = {}
    for schema in schemas.values():
        by_category.setdefault(schema["category"], []).append(schema)
    for category in sorted(by_category):
        print(category)
        for schema in by_category[category]:
            ins = ", ".join(i["name"] for i in schema["inputs"])
            outs = ", ".join(o["name"] for o in schema["outputs"]) or "-"
            print(f"  {schema['name']}({ins}) -> {outs}")
    for problem in env.registry.problems:
        print(f"not loaded: {problem.source}: {problem.message}")
    return 0


def cmd_convert(args) -> int:
    from .formats import comfy_api

    env = _environment(args)
    workflow = _load(args, env)
    doc = comfy_api.from_native(workflow, env.registry) if args.to == "comfy_api" else workflow.to_json()
    text = json.dumps(doc, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
    else:
        print(text)
    return 0


def cmd_serve(args) -> int:
    from .server import serve
    from .server.frontend import COMFY, comfy_frontend_root

    if args.frontend == COMFY:
        comfy_frontend_root()  # says how to install it before anything loads
    env = _environment(args)
    serve(env, host=args.host, port=args.port, token=args.token, data_dir=args.data_dir, frontend=args.frontend,
          in_process=args.in_process, interrupt_grace=args.interrupt_grace)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nodegraph", description="Run and serve node-graph image workflows.")
    parser.add_argument("--plugins", default="custom_nodes", help="custom nodes folder (default ./custom_nodes)")
    parser.add_argument("--models-dir", default=None, help="models folder (default ./models)")
    parser.add_argument("--verbose", "-v", action="store_true", help="print tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a workflow (JSON, ComfyUI API/UI JSON, or a PNG with one embedded)")
    run.add_argument("workflow")
    run.add_argument("--set", action="append", metavar="NODE.INPUT=VALUE", help="override an input (repeatable)")
    run.add_argument("--output-dir", default=None, help="where images are written (default ./output)")
    run.add_argument("--input-dir", default=None, help="where LoadImage looks (default ./input)")
    run.add_argument("--device", default=None, help="cuda, cuda:1, mps or cpu (default: best available)")
    run.add_argument("--quiet", "-q", action="store_true")
    run.set_defaults(func=cmd_run)

    val = sub.add_parser("validate", help="check a workflow and print every problem")
    val.add_argument("workflow")
    val.add_argument("--json", action="store_true")
    val.set_defaults(func=cmd_validate)

    nodes = sub.add_parser("nodes", help="list the node types (with --json: their full schemas)")
    nodes.add_argument("--json", action="store_true")
    nodes.set_defaults(func=cmd_nodes)

    conv = sub.add_parser("convert", help="convert a workflow to native or ComfyUI API format")
    conv.add_argument("workflow")
    conv.add_argument("--to", choices=["native", "comfy_api"], default="native")
    conv.add_argument("--output", "-o", default=None)
    conv.set_defaults(func=cmd_convert)

    serve = sub.add_parser("serve", help="serve the HTTP API, websocket events and the editor")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8188)
    serve.add_argument("--token", default=None, help="required on every request (mandatory off loopback)")
    serve.add_argument("--data-dir", default=".", help="where the queue database lives")
    serve.add_argument("--device", default=None)
    serve.add_argument("--frontend", default=None, metavar="comfy|PATH",
                       help="serve ComfyUI's frontend ('comfy': pip install 'nodegraph[comfy-frontend]') or a built "
                            "frontend folder instead of our editor")
    serve.add_argument("--in-process", action="store_true",
                       help="run jobs on a thread of the server instead of a supervised worker process")
    serve.add_argument("--interrupt-grace", type=float, default=5.0, metavar="SECONDS",
                       help="kill and restart the worker when a node ignores an interrupt this long (default 5)")
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
