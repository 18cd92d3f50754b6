"""nodegraph against ComfyUI on the same GPU and the same checkpoint file, interleaved.

    python bench/vs_comfyui.py --comfy PATH [--ckpt FILE] [--batches 1 4] [--steps 20] [--size 512]
                               [--reps 5] [--out bench/results] [-- ComfyUI CLI args]

PATH is a ComfyUI source tree (0.8.0: the repository pollockjj/ComfyUI) with its requirements importable.
Without --ckpt a random-weight SD1.5 checkpoint is built (bench/sd15_gpu.py's build_sd15, fp16, single file);
--extra adds batch-1 rows for SDXL 1024² (a random SDXL base checkpoint, both text encoders, built beside it)
and SD1.5 + one ControlNet (a random full-size ControlNet in the original cldm layout, models/controlnet/cn0,
through ControlNetLoader + ControlNetApplyAdvanced with a white hint, strength 1, whole schedule); ComfyUI
loads the same files.

Two worker processes hold their engine loaded (nodegraph and ComfyUI cannot share one process: both have a
top-level `nodes`); the parent sends them the same jobs in turn: per round and batch size nodegraph eager
(CUDA graphs off), nodegraph fast path (graphs on) and ComfyUI, the order rotating every round. Round 0 is
the cold run (loading, warm-up, graph capture) and is reported apart; medians come from the warm rounds.
After it, nodegraph's background torch.compile of the U-Net (unet_compile.py, on here unless --no-compile)
is waited for (--compile-wait) with untimed passes that swap the compiled kernels in and re-capture.

Per job: txt2img, "a photo of a cat" / "", EmptyLatentImage, KSampler euler / normal, CFG 7, VAE decode.
it/s = steps / wall time of the sampler node (both engines return the latent on the CPU, so the GPU is done;
that time includes noise, conditioning set-up and every per-run cost); VAE ms = the decode node's wall time;
peak = torch.cuda.max_memory_allocated in that worker during the job. nodegraph's two paths are compared
image by image (same seed): PSNR in dB of the decoded images, fast path against eager.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPT, NEGATIVE = "a photo of a cat", ""
# what a job runs: checkpoint file (None: --ckpt), image size (None: --size), ControlNets stacked
SCENARIOS = {
    "sd15": {"label": "SD1.5", "ckpt": None, "size": None, "controlnets": 0},
    "sdxl": {"label": "SDXL", "ckpt": "sdxl-random.safetensors", "size": 1024, "controlnets": 0},
    "cn1": {"label": "SD1.5 + 1 ControlNet", "ckpt": None, "size": None, "controlnets": 1},
}


# ---------------------------------------------------------------------------------------------------------
# workers: read one JSON job per line on stdin, answer "RESULT {json}" on stdout
# ---------------------------------------------------------------------------------------------------------

def _serve(handle) -> None:
    print("RESULT " + json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        if job.get("cmd") == "quit":
            break
        print("RESULT " + json.dumps(handle(job)), flush=True)


def nodegraph_worker(args) -> None:
    sys.path.insert(0, str(ROOT))
    import torch

    from bench.sd15_gpu import workflow
    from nodegraph.environment import Environment
    from nodegraph.executor import Executor
    from nodegraph.folders import Folders
    from nodegraph.registry import default_registry
    from nodes.diffusion import cuda_graphs

    from nodes.diffusion import unet_compile
    unet_compile.set_enabled(args.compile)  # only graphed calls use it: the eager rows stay eager

    def compile_for(scenario_name: str) -> None:
        """--compile-models: compile on for this job's model or not (per model, so each U-Net's graphs
        see one setting and are never re-captured for a switch; cn1 runs the SD1.5 U-Net)."""
        model = "sdxl" if scenario_name == "sdxl" else "sd15"
        unet_compile.set_enabled(args.compile and model in args.compile_models)
    folder = Path(args.ckpt).parent
    registry = default_registry(plugins_dir=None)
    for pack in ("nodes.primitives", "nodes.image", "nodes.diffusion"):  # a source tree not pip-installed
        if "KSampler" not in registry or "PreviewImage" not in registry:
            registry.import_module(pack, "bench")
    env = Environment(registry=registry, folders=Folders(folder.parent.parent))
    images: dict[tuple, torch.Tensor] = {}

    def unet_dtype() -> str:
        modules = list(cuda_graphs.GraphRunner._by_module.keys())
        return str(next(modules[-1].parameters()).dtype) if modules else str(env.devices.dtype)

    def queue(job):
        """job["jobs"] single-image jobs one after another, as a queue runs them: seconds for all."""
        cuda_graphs.set_enabled(job["mode"] == "graphs")
        compile_for("sd15")
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        if args.queue_batching:  # the server's cross-job batching: the queued jobs handed over together
            from nodegraph.node import RunControl
            from nodegraph.workers import JobRequest, JobRunner

            env.cache.clear()
            jobs = []
            for i in range(job["jobs"]):
                doc = workflow(args.size, 1, args.steps, seed=job["seed"] + i)
                doc["nodes"]["4"]["inputs"]["ckpt_name"] = Path(args.ckpt).name
                jobs.append((JobRequest(f"q{i}", doc), RunControl(), lambda *a: None))
            for outcome in JobRunner(env).run_together(jobs):
                assert outcome.status == "success", outcome.errors
        for i in range(0 if args.queue_batching else job["jobs"]):
            doc = workflow(args.size, 1, args.steps, seed=job["seed"] + i)
            doc["nodes"]["4"]["inputs"]["ckpt_name"] = Path(args.ckpt).name
            env.cache.clear()
            result = Executor(env).run(doc)
            assert result.status == "success", result.errors
            result.value("8")
        torch.cuda.synchronize()
        return {"queue_s": time.perf_counter() - t0, "unet_dtype": unet_dtype()}

    def wait_compile(job):
        """Until the background torch.compile of every U-Net is done: seconds each, failures."""
        from nodes.diffusion import unet_compile
        t0 = time.perf_counter()
        compilers = list(unet_compile.BackgroundCompiler._by_module.values())
        end = time.monotonic() + job.get("timeout", 600)
        done = all([compiler.wait(max(0.0, end - time.monotonic())) for compiler in compilers])
        return {"waited_s": time.perf_counter() - t0, "all_done": done, "mode": [c.mode for c in compilers],
                "compile_s": [sorted(c.compile_seconds.values()) for c in compilers],
                "failed": [list(c.failed.values()) for c in compilers]}

    def handle(job):
        if job.get("cmd") == "syncdebug":
            return sync_debug(job)
        if job.get("cmd") == "wait_compile":
            return wait_compile(job)
        if job.get("jobs"):
            return queue(job)
        cuda_graphs.set_enabled(job["mode"] == "graphs")
        compile_for(job.get("scenario", "sd15"))
        scenario = SCENARIOS[job.get("scenario", "sd15")]
        size = scenario["size"] or args.size
        doc = workflow(size, job["batch"], args.steps, seed=job["seed"], controlnets=scenario["controlnets"])
        doc["nodes"]["4"]["inputs"]["ckpt_name"] = scenario["ckpt"] or Path(args.ckpt).name
        stamps: dict[str, float] = {}
        torch.cuda.reset_peak_memory_stats()

        def on_event(name, data):
            if name == "executing":
                stamps[str(data.get("node"))] = time.perf_counter()

        # the output cache would answer the same job in the other mode without running it (loaded models
        # stay: they are in the device manager's cache)
        env.cache.clear()
        result = Executor(env).run(doc, on_event=on_event)
        assert result.status == "success", result.errors
        image = result.value("8").float()
        key = (job.get("scenario", "sd15"), job["seed"], job["batch"])
        images[key + (job["mode"],)] = image
        other = images.get(key + ("eager" if job["mode"] == "graphs" else "graphs",))
        psnr = None
        if other is not None:
            mse = float(((image - other) ** 2).mean())
            psnr = float("inf") if mse == 0 else 10 * __import__("math").log10(1.0 / mse)
        ks = stamps["8"] - stamps["3"]
        return {"ks_s": ks, "its": args.steps / ks, "vae_ms": (stamps["9"] - stamps["8"]) * 1e3,
                "peak_gib": torch.cuda.max_memory_allocated() / 2**30, "psnr_vs_other_mode": psnr,
                "finite": bool(torch.isfinite(image).all()), "unet_dtype": unet_dtype()}

    def sync_debug(job):
        """Run one job with PyTorch's sync debug mode: every synchronizing call, by where it happened."""
        import traceback
        import warnings
        sites: dict[str, int] = {}

        def show(message, category, filename, lineno, file=None, line=None):
            frames = [f for f in traceback.extract_stack()[:-1] if "/nodes/" in f.filename or "/nodegraph/" in f.filename]
            where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(frames[-3:]))
            sites[where] = sites.get(where, 0) + 1

        old = warnings.showwarning
        warnings.showwarning = show
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            r = handle({"batch": job["batch"], "seed": job["seed"], "mode": job["mode"]})
        finally:
            torch.cuda.set_sync_debug_mode("default")
            warnings.showwarning = old
        return {"sync_sites": sites, "its": r["its"]}

    _serve(handle)


def comfy_worker(args) -> None:
    comfy_dir = Path(args.comfy).resolve()
    sys.argv = [sys.argv[0]] + args.comfy_args
    sys.path.insert(0, str(comfy_dir))
    try:
        import av  # noqa: F401  (ComfyUI's API package imports PyAV at module level; this path never uses it)
    except ImportError:
        stub = ROOT / "bench" / "stubs"
        if (stub / "av").is_dir():
            sys.path.insert(0, str(stub))
    import comfy.options
    comfy.options.enable_args_parsing()
    import cuda_malloc  # noqa: F401  (as ComfyUI's main.py: the allocator setting before torch starts)
    import torch

    import comfy.controlnet
    import comfy.sd
    import nodes

    loaded: dict[str, tuple] = {}

    def models(scenario: dict) -> tuple:
        """(model, vae, positive, negative) of a scenario, loaded once (ComfyUI's own memory management
        moves them on and off the GPU between scenarios, as in a server)."""
        ckpt = str(Path(args.ckpt).parent / scenario["ckpt"]) if scenario["ckpt"] else args.ckpt
        if ckpt not in loaded:
            model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(ckpt, output_vae=True, output_clip=True,
                                                                        embedding_directory=None)
            loaded[ckpt] = (model, vae, nodes.CLIPTextEncode().encode(clip, PROMPT)[0],
                            nodes.CLIPTextEncode().encode(clip, NEGATIVE)[0])
        model, vae, positive, negative = loaded[ckpt]
        for k in range(scenario["controlnets"]):  # ControlNetLoader + ControlNetApplyAdvanced, a white hint
            path = Path(args.ckpt).parent.parent / "controlnet" / f"cn{k}.safetensors"
            if str(path) not in loaded:
                loaded[str(path)] = comfy.controlnet.load_controlnet(str(path))
            size = scenario["size"] or args.size
            positive, negative = nodes.ControlNetApplyAdvanced().apply_controlnet(
                positive, negative, loaded[str(path)], torch.ones(1, size, size, 3), 1.0, 0.0, 1.0)[:2]
        return model, vae, positive, negative

    with torch.inference_mode():
        model, vae, positive, negative = models(SCENARIOS["sd15"])

    def queue(job):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.inference_mode():
            for i in range(job["jobs"]):
                latent = nodes.EmptyLatentImage().generate(args.size, args.size, 1)[0]
                out = nodes.common_ksampler(model, job["seed"] + i, args.steps, 7.0, "euler", "normal", positive,
                                            negative, latent)[0]
                nodes.VAEDecode().decode(vae, out)[0].cpu()
        torch.cuda.synchronize()
        return {"queue_s": time.perf_counter() - t0, "unet_dtype": str(model.model.get_dtype())}

    def handle(job):
        if job.get("jobs"):
            return queue(job)
        scenario = SCENARIOS[job.get("scenario", "sd15")]
        size = scenario["size"] or args.size
        with torch.inference_mode():
            model, vae, positive, negative = models(scenario)
            latent = nodes.EmptyLatentImage().generate(size, size, job["batch"])[0]
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            out = nodes.common_ksampler(model, job["seed"], args.steps, 7.0, "euler", "normal", positive, negative,
                                        latent)[0]
            torch.cuda.synchronize()
            t1 = time.perf_counter()
            image = nodes.VAEDecode().decode(vae, out)[0]
            torch.cuda.synchronize()
            t2 = time.perf_counter()
        return {"ks_s": t1 - t0, "its": args.steps / (t1 - t0), "vae_ms": (t2 - t1) * 1e3,
                "peak_gib": torch.cuda.max_memory_allocated() / 2**30, "finite": bool(torch.isfinite(image).all()),
                "unet_dtype": str(model.model.get_dtype())}

    _serve(handle)


# ---------------------------------------------------------------------------------------------------------
# the parent
# ---------------------------------------------------------------------------------------------------------

class Worker:
    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, __file__, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env, cwd=str(ROOT))
        self.read()

    def read(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT "):])
            print(f"[{self.name}] {line.rstrip()}", flush=True)
        raise RuntimeError(f"{self.name} worker ended (exit {self.proc.wait()})")

    def run(self, job: dict) -> dict:
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        try:
            self.proc.stdin.write('{"cmd": "quit"}\n')
            self.proc.stdin.flush()
        except OSError:
            pass
        self.proc.wait(timeout=60)


def build(call: str, path: Path) -> None:
    """bench/sd15_gpu.py's builders, in a process of their own (its GPU memory goes back at the end)."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    code = ("import sys; sys.path.insert(0, %r); from pathlib import Path; from bench.sd15_gpu import *; "
            "%s" % (str(ROOT), call % repr(str(path))))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(ROOT))
    print(f"built {path} in {time.perf_counter() - t:.1f} s", flush=True)


def main() -> None:
    argv = sys.argv[1:]
    mine, theirs = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    p = argparse.ArgumentParser()
    p.add_argument("--comfy", required=True)
    p.add_argument("--ckpt", default=None)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--reps", type=int, default=5, help="warm rounds (after one cold round)")
    p.add_argument("--queue", type=int, default=8, help="single-image jobs per queue round (0: none)")
    p.add_argument("--extra", nargs="*", default=["sdxl", "cn1"], choices=["sdxl", "cn1"],
                   help="batch-1 rows besides SD1.5: SDXL 1024² (random SDXL base), SD1.5 + one ControlNet")
    p.add_argument("--queue-batching", action="store_true",
                   help="nodegraph runs the queued jobs together (the server's cross-job batching), not one by one")
    p.add_argument("--out", default=None, help="folder for the results (markdown + json)")
    p.add_argument("--time-limit", type=float, default=1e9,
                   help="no warm round starts that would end after this many seconds, judged by the last round "
                        "(the report covers the rounds run; it is rewritten after each warm round)")
    p.add_argument("--compile-wait", type=float, default=300,
                   help="seconds to wait after the cold round for nodegraph's background torch.compile")
    p.add_argument("--no-compile", dest="compile", action="store_false",
                   help="nodegraph's fast path without the background torch.compile of the U-Net")
    p.add_argument("--compile-models", nargs="*", default=["sd15", "sdxl"], choices=["sd15", "sdxl"],
                   help="the U-Nets compiled in the background (sd15 also serves the ControlNet row); the others "
                        "keep the eager kernels under their CUDA graphs (a shorter compile wait)")
    p.add_argument("--tag", default="", help="suffix of the result files' names")
    p.add_argument("--worker", choices=["nodegraph", "comfy"], default=None)
    args = p.parse_args(mine)
    args.comfy_args = theirs
    if args.worker == "nodegraph":
        return nodegraph_worker(args)
    if args.worker == "comfy":
        return comfy_worker(args)

    if args.ckpt is None:
        args.ckpt = str(Path(os.environ.get("TMPDIR", "/tmp")) / "vs-comfyui" / "models" / "checkpoints"
                        / "sd15-random.safetensors")
    ckpt = Path(args.ckpt)
    build("build_sd15(Path(%s))", ckpt)
    if "sdxl" in args.extra:
        build("build_random_checkpoint(Path(%s), 'sdxl')", ckpt.parent / SCENARIOS["sdxl"]["ckpt"])
    if "cn1" in args.extra:  # the original (cldm) layout, which both engines load
        build("build_controlnet(Path(%s), 'original')", ckpt.parent.parent / "controlnet" / "cn0.safetensors")
    common = ([] if args.compile else ["--no-compile"]) + ["--compile-models", *args.compile_models] + ["--ckpt", str(ckpt), "--steps", str(args.steps), "--size", str(args.size), "--comfy", args.comfy]
    common += ["--queue-batching"] if args.queue_batching else []
    ng = Worker("nodegraph", common + ["--worker", "nodegraph"])
    cf = Worker("comfy", common + ["--worker", "comfy", "--", *theirs])
    engines = [("nodegraph eager", ng, "eager"), ("nodegraph fast", ng, "graphs"), ("ComfyUI", cf, None)]
    rows = []
    try:
        runs = [("sd15", b) for b in args.batches] + [(extra, 1) for extra in args.extra]
        started = time.monotonic()
        last_round_s = 0.0
        wanted = args.reps
        for rnd in range(1 + wanted):
            round_start = time.monotonic()
            # no warm round starts that would end after --time-limit (judged by the last round's length)
            if rnd > 1 and round_start - started + last_round_s > args.time_limit:
                print(f"time limit: {rnd - 1} warm rounds", flush=True)
                break
            for scenario, batch in runs:
                order = engines[rnd % 3:] + engines[:rnd % 3]
                for name, worker, mode in order:
                    r = worker.run({"batch": batch, "seed": 1000 + rnd, "mode": mode, "scenario": scenario})
                    r.update(engine=name, batch=batch, round=rnd, scenario=scenario)
                    rows.append(r)
                    psnr = r.get("psnr_vs_other_mode")
                    print(f"[{time.monotonic() - started:4.0f} s] "
                          f"round {rnd} {scenario} batch {batch} {name:>16}: {r['its']:7.2f} it/s  VAE {r['vae_ms']:6.1f} ms  "
                          f"peak {r['peak_gib']:.2f} GiB" + (f"  PSNR fast/eager {psnr:.1f} dB" if psnr else ""),
                          flush=True)
            if rnd == 0:  # the fast path's background torch.compile: done, swapped in, graphs re-captured
                deadline = time.monotonic() + args.compile_wait
                compiled = -1
                while True:  # a pass can ask for more (graphs put off while a compile held the GPU)
                    for scenario, batch in runs:  # untimed: swap-ins, captures and new compile requests
                        ng.run({"batch": batch, "seed": 999, "mode": "graphs", "scenario": scenario})
                    r = ng.run({"cmd": "wait_compile", "timeout": max(0.0, deadline - time.monotonic())})
                    done = sum(len(c) for c in r["compile_s"]) + sum(len(f) for f in r["failed"])
                    print(f"[{time.monotonic() - started:4.0f} s] background torch.compile: waited {r['waited_s']:.1f} s (all done: {r['all_done']}); "
                          f"mode {r['mode']}, seconds per compiled call {r['compile_s']}, failures {r['failed']}",
                          flush=True)
                    if done == compiled or not r["all_done"]:
                        break
                    compiled = done
                rows.append({"engine": "nodegraph fast", "compile": r, "round": 0, "batch": "compile"})
            if args.queue:  # a queue of single-image jobs, txt2img + decode each, per engine
                for name, worker, mode in engines[rnd % 3:] + engines[:rnd % 3]:
                    r = worker.run({"jobs": args.queue, "seed": 2000 + rnd, "mode": mode})
                    r.update(engine=name, batch=f"queue{args.queue}", round=rnd)
                    rows.append(r)
                    print(f"[{time.monotonic() - started:4.0f} s] "
                          f"round {rnd} queue of {args.queue} {name:>16}: {r['queue_s']:6.2f} s", flush=True)
            if rnd > 0:  # the report of the warm rounds so far, written each round: a run cut off keeps it
                args.reps = rnd
                report(args, rows, echo=False)
                last_round_s = time.monotonic() - round_start
        for mode in ("eager", "graphs"):  # where nodegraph still synchronises, per whole job
            r = ng.run({"cmd": "syncdebug", "batch": 1, "seed": 5, "mode": mode})
            print(f"sync debug, nodegraph {mode}, one job of {args.steps} steps: "
                  f"{sum(r['sync_sites'].values())} synchronising calls", flush=True)
            for where, count in sorted(r["sync_sites"].items(), key=lambda kv: -kv[1]):
                print(f"  {count:4d}x {where}", flush=True)
    finally:
        ng.close()
        cf.close()
    report(args, rows)


def report(args, rows, echo: bool = True) -> None:
    import torch
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# nodegraph vs ComfyUI: random-weight checkpoints, {args.steps} steps euler/normal, CFG 7",
             "", f"{device}, torch {torch.__version__}, {when}; median of {args.reps} warm interleaved runs "
             "(round 0, cold, apart); peak = max GPU memory allocated during the job; ComfyUI args: "
             + (" ".join(args.comfy_args) or "none"), "",
             "| what | engine | batch | it/s (median) | min–max | images/s | vs ComfyUI | VAE ms | peak GiB | cold it/s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    summary = {}
    runs = [("sd15", b) for b in args.batches] + [(extra, 1) for extra in args.extra]
    for scenario, batch in runs:
        size = SCENARIOS[scenario]["size"] or args.size
        what = f"{SCENARIOS[scenario]['label']} {size}²"
        for name in ("nodegraph eager", "nodegraph fast", "ComfyUI"):
            mine = [r for r in rows if r["engine"] == name and r["batch"] == batch
                    and r.get("scenario", "sd15") == scenario]
            warm = [r for r in mine if r["round"] > 0]
            cold = [r for r in mine if r["round"] == 0]
            if warm:
                summary[(name, scenario, batch)] = (statistics.median(r["its"] for r in warm), warm, cold)
        base = summary.get(("ComfyUI", scenario, batch), (None,))[0]
        for name in ("nodegraph eager", "nodegraph fast", "ComfyUI"):
            if (name, scenario, batch) not in summary:
                continue
            its, warm, cold = summary[(name, scenario, batch)]
            ratio = f"{its / base:.2f}×" if base else "–"
            lines.append(f"| {what} | {name} ({warm[0].get('unet_dtype', '?')}) | {batch} | {its:.2f} | "
                         f"{min(r['its'] for r in warm):.2f}–{max(r['its'] for r in warm):.2f} | "
                         f"{its * batch / args.steps:.2f} | {ratio} | "
                         f"{statistics.median(r['vae_ms'] for r in warm):.1f} | "
                         f"{max(r['peak_gib'] for r in warm):.2f} | "
                         + (f"{cold[0]['its']:.2f} |" if cold else "– |"))
    if args.queue:
        lines += ["", f"{args.queue} queued single-image jobs (txt2img + VAE decode each, "
                  + ("nodegraph's run together by cross-job batching" if args.queue_batching else "one after another")
                  + "):", "",
                  "| engine | seconds (median) | min–max | vs ComfyUI |", "|---|---|---|---|"]
        q = {name: [r["queue_s"] for r in rows if r["engine"] == name and r["batch"] == f"queue{args.queue}"
                    and r["round"] > 0] for name in ("nodegraph eager", "nodegraph fast", "ComfyUI")}
        base = statistics.median(q["ComfyUI"]) if q["ComfyUI"] else None
        for name, secs in q.items():
            if secs:
                med = statistics.median(secs)
                lines.append(f"| {name} | {med:.2f} | {min(secs):.2f}–{max(secs):.2f} | "
                             + (f"{base / med:.2f}× faster |" if base else "– |"))
    psnrs = [r["psnr_vs_other_mode"] for r in rows if r.get("psnr_vs_other_mode") is not None]
    if psnrs:
        lines += ["", f"nodegraph fast path vs eager, same seed: PSNR of the decoded images min {min(psnrs):.1f} dB "
                  f"over {len(psnrs)} pairs"]
    text = "\n".join(lines) + "\n"
    if echo:
        print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        stem = "vs_comfyui-" + device.replace(" ", "_") + "-" + when[:10] + (f"-{args.tag}" if args.tag else "")
        (out / f"{stem}.md").write_text(text)
        (out / f"{stem}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
