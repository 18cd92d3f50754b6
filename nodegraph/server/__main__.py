"""`python -m nodegraph.server`: run the server without the full CLI (tests and benchmarks use it).

    python -m nodegraph.server [--host H] [--port P] [--token T] [--data-dir D] [--base B] [--plugins DIR]
                               [--frontend comfy|PATH] [--in-process] [--interrupt-grace SECONDS] [--no-builtins]
                               [--preview-method none|auto|latent2rgb|taesd]
"""
from __future__ import annotations

import argparse
import sys

from ..environment import Environment
from . import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nodegraph.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--token", default=None)
    parser.add_argument("--data-dir", default=".")
    parser.add_argument("--base", default=".", help="folder holding models/, input/, output/, temp/")
    parser.add_argument("--plugins", default="custom_nodes")
    parser.add_argument("--device", default=None)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--frontend", default=None, help="'comfy' (ComfyUI's frontend package) or a built frontend folder")
    parser.add_argument("--no-builtins", action="store_true", help="only the plugins folder's nodes (tests)")
    parser.add_argument("--in-process", action="store_true", help="run jobs on a thread, not in a worker process")
    parser.add_argument("--interrupt-grace", type=float, default=5.0)
    parser.add_argument("--preview-method", default="none", choices=("none", "auto", "latent2rgb", "taesd"))
    from ..cli import add_batching_flags

    add_batching_flags(parser)
    args = parser.parse_args(argv)
    env = Environment.create(base=args.base, plugins_dir=args.plugins, device=args.device,
                             builtins=not args.no_builtins)
    for problem in env.registry.problems:
        print(f"warning: {problem.source}: {problem.message}", file=sys.stderr)
    serve(env, host=args.host, port=args.port, token=args.token, data_dir=args.data_dir, log_level=args.log_level,
          frontend=args.frontend, in_process=args.in_process, interrupt_grace=args.interrupt_grace,
          preview_method=args.preview_method, max_batch_jobs=args.max_batch_jobs,
          batch_window_ms=0.0 if args.no_cross_job_batching else args.batch_window_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
