"""Command line: `nodegraph run | validate | nodes | convert | serve`."""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from .environment import Environment
from .executor import Executor
from .formats import WorkflowFormatError, load_workflow, parse_workflow
from .limits import Limits, parse_count, parse_size
from .validate import ValidationFailed, validate
from .workflow import is_link


def _limits(args) -> Limits:
    limits = Limits()
    for flag in ("max_body_bytes", "max_upload_bytes", "max_nodes", "max_image_pixels", "max_int_bits"):
        if getattr(args, flag, None) is not None:
            setattr(limits, flag, getattr(args, flag))
    return limits


def _environment(args) -> Environment:
    env = Environment.create(base=".", plugins_dir=args.plugins, models=args.models_dir,
                             output=getattr(args, "output_dir", None), input=getattr(args, "input_dir", None),
                             device=getattr(args, "device", None), cache_bytes=getattr(args, "cache_bytes", None),
                             vram_budget=getattr(args, "vram_budget", None), limits=_limits(args))
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
        except (ValueError, RecursionError) as exc:  # 5000 digits, deep nesting
            raise SystemExit(f"--set {item[:80]!r}: {one_line(exc)}")
        entry = workflow.nodes[matches[0]]
        if is_link(entry.inputs.get(input_name)):
            raise SystemExit(f"--set {item!r}: input {input_name!r} of node {matches[0]} is a link, not a value")
        entry.inputs[input_name] = value


def one_line(exc: BaseException) -> str:
    """An exception as one line: pydantic's multi-line reports become 'loc: message; ...'."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            parts = [f"{'.'.join(map(str, e['loc'])) or 'document'}: {e['msg']}" for e in errors()[:5]]
            return "; ".join(parts) + ("; ..." if len(errors()) > 5 else "")
        except Exception:
            pass
    return " ".join(str(exc).split()) or type(exc).__name__


def _position(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    return f"{line}:{offset - text.rfind(chr(10), 0, offset)}"


_STRING = r'"(?:[^"\\]|\\.)*"'


def _json_problem(text: str) -> str:
    """Where a JSON text that json.loads refused with ValueError or RecursionError goes wrong:
    'LINE:COL: what' (strings are skipped, so their contents never count)."""
    limit = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 4300
    for match in re.finditer(_STRING + r"|-?\d{%d,}" % (limit + 1), text):
        if not match.group().startswith('"'):
            digits = len(match.group().lstrip("-"))
            return f"{_position(text, match.start())}: a number of {digits:,} digits (at most {limit:,} are read)"
    depth, deepest, where = 0, 0, 0
    for match in re.finditer(_STRING + r"|[\[\]{}]", text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > deepest:
                deepest, where = depth, match.start()
        elif token in "]}":
            depth -= 1
    return f"{_position(text, where)}: nested {deepest:,} levels deep, too deep to read"


def _load(args, env):
    """The workflow file, or one line 'error: FILE[:LINE:COL]: what' and exit 2: never a traceback."""
    path = Path(args.workflow)
    try:
        size = path.stat().st_size
        if size > env.limits.max_body_bytes:
            raise SystemExit(f"error: {path}: {size:,} bytes, more than the limit of {env.limits.max_body_bytes:,} "
                             "(--max-submission-bytes)")
        if path.suffix.lower() == ".png":
            workflow = load_workflow(path, env.registry)
        else:
            raw = path.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise SystemExit(f"error: {path}: byte {exc.start}: not UTF-8 text") from None
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"error: {path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
            except (ValueError, RecursionError):
                raise SystemExit(f"error: {path}:{_json_problem(text)}") from None
            workflow = parse_workflow(data, env.registry)
    except WorkflowFormatError as exc:
        raise SystemExit(f"error: {one_line(exc)}") from None
    except OSError as exc:
        raise SystemExit(f"error: {path}: {exc.strerror or exc}") from None
    except RecursionError:
        raise SystemExit(f"error: {path}: nested too deep to read") from None
    except ValueError as exc:  # pydantic's ValidationError among them
        raise SystemExit(f"error: {path}: not a workflow: {one_line(exc)}") from None
    problem = env.limits.workflow_size_problem(len(workflow.nodes))
    if problem:
        raise SystemExit(f"error: {path}: {problem}")
    return workflow


def cmd_run(args) -> int:
    from tqdm import tqdm

    env = _environment(args)
    workflow = _load(args, env)
    _apply_sets(workflow, args.set or [])
    if args.sweep or args.ray is not False:
        return _run_sweep(args, env, workflow)
    bar = None
    current = {}

    def on_event(event: str, data: dict) -> None:
        nonlocal bar
        if args.quiet:
            return
        if event == "executing" and data.get("node") is not None:
            node_id = data["node"]
            entry = workflow.nodes.get(node_id)
            if entry is not None:
                current["label"] = f"{node_id} {entry.title or entry.type}"
            else:  # a node an expansion added: shown with the workflow node it stands for
                current["label"] = f"{node_id} (expanded, in node {data.get('display_node')})"
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
            inside = (f" in expanded node {data['expanded_node']} ({data['expanded_node_type']})"
                      if data.get("expanded_node") else "")
            print(f"✗ node {data['node_id']} ({data['node_type']}){inside}: {data['exception_message']}",
                  file=sys.stderr)
            if args.verbose:
                print("".join(data["traceback"]), file=sys.stderr)

    started = time.perf_counter()
    try:
        result = Executor(env).run(workflow, on_event=on_event,
                                   extra={"no_metadata": True} if args.disable_metadata else None)
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


def _ray_backend(args, env):
    try:
        from .distributed import RayBackend
    except ImportError as exc:
        raise SystemExit(f"error: --ray needs Ray: pip install 'nodegraph[ray]' ({exc})") from None
    return RayBackend(env, address=args.ray, workers=args.ray_workers,
                      num_cpus=args.ray_workers if args.ray is None and args.ray_workers else None)


def _run_sweep(args, env, workflow) -> int:
    """--sweep (and run --ray): the jobs of the sweeps' product, one progress bar, a manifest."""
    from tqdm import tqdm

    from .sweep import SweepError, expand, parse_sweep, run_jobs
    from .workers import InProcessBackend

    try:
        jobs = expand(workflow.to_json(), [parse_sweep(item) for item in args.sweep or []])
    except SweepError as exc:
        raise SystemExit(f"error: {exc}") from None
    backend = _ray_backend(args, env) if args.ray is not False else InProcessBackend(env)
    failed = []
    with tqdm(total=len(jobs), unit="job", file=sys.stderr, disable=args.quiet) as bar:
        def progress(outcome) -> None:
            bar.update(1)
            if outcome.status != "success":
                failed.append(outcome)

        try:
            backend.start()
            manifest = run_jobs(jobs, backend, env.folders.output, progress, source=str(args.workflow))
        finally:
            backend.close()
    print(f"{len(jobs) - len(failed)} of {len(jobs)} job(s) succeeded in {manifest['seconds']:.2f} s "
          f"({backend.kind}); manifest: {env.folders.output / 'manifest.json'}")
    for entry in manifest["jobs"]:
        for error in entry.get("errors", [])[:1]:
            print(f"  {entry['job']} {entry['parameters']}: {error.get('exception_message')}")
    return 0 if not failed else 1


def cmd_status(args) -> int:
    """The server's workers (GET /v1/cluster): device, loaded models, current job, throughput."""
    import httpx

    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    try:
        reply = httpx.get(args.url.rstrip("/") + "/v1/cluster", headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        raise SystemExit(f"error: {args.url}: {exc}") from None
    if reply.status_code != 200:
        raise SystemExit(f"error: {args.url}/v1/cluster: HTTP {reply.status_code}: {reply.text[:200]}")
    data = reply.json()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"backend: {data['backend']}" + (f" at {data['address']}" if data.get("address") else ""))
    for w in data["workers"]:
        rate = w.get("jobs_per_busy_second")
        print(f"  {w['name']:<14} {'up' if w.get('alive', True) else 'DEAD':<4} {w.get('device') or '?':<8} "
              f"job={w.get('current_job') or '-':<12} jobs={w.get('jobs_run') or 0:<5} "
              f"{f'{rate:.2f} jobs/s busy' if rate else '':<18} models={', '.join(w.get('models') or []) or '-'}")
    return 0


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
    _print_import_times(env)
    return 0


def _print_import_times(env, file=None) -> None:
    """ComfyUI's "Import times for custom nodes" listing, for the plugins folder."""
    lines = env.registry.import_times()
    if lines:
        print("\nImport times for custom nodes:", file=file)
        for line in lines:
            print(line, file=file)
        print(file=file, flush=True)


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


PREVIEW_METHODS = ("none", "auto", "latent2rgb", "taesd")  # ComfyUI's --preview-method


def cmd_serve(args) -> int:
    import os

    from .server import serve
    from .server.frontend import COMFY, comfy_frontend_root
    from .server.security import check_token

    if args.frontend == COMFY:
        comfy_frontend_root()  # says how to install it before anything loads

    token = check_token(args.token if args.token is not None else os.environ.get("NODEGRAPH_TOKEN"))
    env = _environment(args)
    _print_import_times(env)
    serve(env, host=args.host, port=args.port, token=token, data_dir=args.data_dir, limits=env.limits,
          allowed_origins=tuple(args.allow_origin or ()), frontend=args.frontend,
          in_process=args.in_process, interrupt_grace=args.interrupt_grace,
          preview_method=args.preview_method, disable_metadata=args.disable_metadata,
          batch_window_ms=0.0 if args.no_cross_job_batching else args.batch_window_ms,
          max_batch_jobs=args.max_batch_jobs,
          backend=_ray_backend(args, env) if args.ray is not False else None)
    # everything is closed and flushed; tearing down torch's modules would take seconds more
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _flag_type(parse, what: str):
    def convert(text: str) -> int:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{what}: {exc}") from None
    convert.__name__ = what  # argparse names the type in its message
    return convert


def add_limit_flags(parser: argparse.ArgumentParser, server: bool = False) -> None:
    """Resource limits (nodegraph/limits.py); each one names its flag in the error it causes."""
    size, count = _flag_type(parse_size, "size"), _flag_type(parse_count, "count")
    group = parser.add_argument_group("limits")
    group.add_argument("--max-submission-bytes", dest="max_body_bytes", type=size, metavar="SIZE",
                       help="largest workflow file" + (" or request body" if server else "") + " (default 32M)")
    group.add_argument("--max-nodes", type=count, metavar="N", help="most nodes in a workflow (default 20000)")
    group.add_argument("--max-image-pixels", type=count, metavar="N",
                       help="most pixels an image may decode to, at upload and LoadImage (default 8192*8192)")
    group.add_argument("--max-int-bits", type=count, metavar="N",
                       help="largest integer a math node may compute, in bits (default 4096)")
    group.add_argument("--cache-bytes", type=size, metavar="SIZE", help="output cache size (default 4G)")
    group.add_argument("--vram-budget", type=size, metavar="SIZE",
                       help="GPU memory models may occupy (default 80%% of the card)")
    if server:
        group.add_argument("--max-upload-bytes", type=size, metavar="SIZE", help="largest uploaded image (default 32M)")


def add_ray_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Ray (pip install 'nodegraph[ray]')")
    group.add_argument("--ray", nargs="?", const=None, default=False, metavar="ADDRESS",
                       help="run jobs on Ray actors: 'auto', ray://HOST:10001, or no address for a local Ray")
    group.add_argument("--ray-workers", type=int, default=None, metavar="N",
                       help="CPU worker actors on a cluster without GPUs (default 1; with GPUs: one per GPU)")


def add_batching_flags(parser) -> None:
    parser.add_argument("--batch-window-ms", type=float, default=None, metavar="MS",
                        help="cross-job batching: take the jobs queued within this window together; sampler runs "
                             "that share model, shape, steps and sampler are sampled as one batch "
                             "(default 20 on CUDA, 0 = off elsewhere)")
    parser.add_argument("--max-batch-jobs", type=int, default=8, metavar="N",
                        help="at most this many jobs taken together (default 8)")
    parser.add_argument("--no-cross-job-batching", action="store_true",
                        help="run queued jobs strictly one at a time (as --batch-window-ms 0)")


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
    run.add_argument("--disable-metadata", action="store_true",
                     help="save images without the workflow in them (ComfyUI's flag of that name)")
    add_limit_flags(run)
    run.add_argument("--no-compile", action="store_true",
                     help="no background torch.compile of the diffusion model (sets NODEGRAPH_COMPILE=0; NODEGRAPH_COMPILE=1 turns it on)")
    run.add_argument("--no-cuda-graphs", action="store_true",
                     help="run the diffusion model eagerly instead of replaying CUDA graphs (sets NODEGRAPH_CUDA_GRAPHS=0)")
    run.add_argument("--sweep", action="append", metavar="[NODE.]INPUT=A..B|V1,V2|@FILE",
                     help="run once per value (repeatable: the Cartesian product); writes manifest.json")
    add_ray_flags(run)
    run.set_defaults(func=cmd_run)

    val = sub.add_parser("validate", help="check a workflow and print every problem")
    val.add_argument("workflow")
    val.add_argument("--json", action="store_true")
    add_limit_flags(val)
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
    serve.add_argument("--token", default=None,
                       help="required on every request (mandatory off loopback; at least 16 characters; "
                            "default: $NODEGRAPH_TOKEN)")
    serve.add_argument("--data-dir", default=".", help="where the queue database lives")
    serve.add_argument("--device", default=None)
    serve.add_argument("--frontend", default=None, metavar="comfy|PATH",
                       help="serve ComfyUI's frontend ('comfy': pip install 'nodegraph[comfy-frontend]') or a built "
                            "frontend folder instead of our editor")
    serve.add_argument("--allow-origin", action="append", metavar="SCHEME://HOST:PORT",
                       help="trust pages of this other origin as the server's own (repeatable)")
    add_limit_flags(serve, server=True)
    serve.add_argument("--no-compile", action="store_true",
                     help="no background torch.compile of the diffusion model (sets NODEGRAPH_COMPILE=0; NODEGRAPH_COMPILE=1 turns it on)")
    serve.add_argument("--disable-metadata", action="store_true",
                       help="save images without the workflow in them (ComfyUI's flag of that name)")
    serve.add_argument("--no-cuda-graphs", action="store_true",
                       help="run the diffusion model eagerly instead of replaying CUDA graphs (sets NODEGRAPH_CUDA_GRAPHS=0)")
    serve.add_argument("--in-process", action="store_true",
                       help="run jobs on a thread of the server instead of a supervised worker process")
    serve.add_argument("--interrupt-grace", type=float, default=5.0, metavar="SECONDS",
                       help="kill and restart the worker when a node ignores an interrupt this long (default 5)")
    serve.add_argument("--preview-method", default="none", choices=PREVIEW_METHODS,
                       help="sampler previews for prompts on ComfyUI's routes unless a prompt asks otherwise "
                            "(ComfyUI's option and default); auto and taesd give latent2rgb here")
    add_batching_flags(serve)
    add_ray_flags(serve)
    serve.set_defaults(func=cmd_serve)

    status = sub.add_parser("status", help="a server's workers: device, loaded models, current job, throughput")
    status.add_argument("--url", default="http://127.0.0.1:8188")
    status.add_argument("--token", default=os.environ.get("NODEGRAPH_TOKEN"))
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "no_cuda_graphs", False):  # in the environment, so worker processes see it too
        os.environ["NODEGRAPH_CUDA_GRAPHS"] = "0"
    if getattr(args, "no_compile", False):
        os.environ["NODEGRAPH_COMPILE"] = "0"
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line, not a traceback, unless asked for
        if args.verbose:
            raise
        print(f"error: {type(exc).__name__}: {one_line(exc)} (--verbose shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
