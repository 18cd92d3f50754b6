"""Ray scale-out: images/s with 1, 2, 3 ... Ray workers on the same job mix, the scaling
efficiency per added worker, and Ray's per-job overhead against the in-process path.

    python bench/ray_scale.py [--workers 1,2,3] [--jobs 12] [--steps 4] [--size 64] [--address ADDR]

Jobs are the default txt2img workflow (shipped checkpoint) with distinct seeds, so every job
samples (the output cache cannot answer it); each worker count gets a fresh set of actors that
first runs one warm-up job each (model load), as a long-running server's workers would have.
Overhead = (job latency through Ray) - (time the job ran inside the actor), the same job mix run
one at a time on one worker; the in-process figure is the same for InProcessBackend.
On CPU workers the cores are shared: scaling is bounded by the machine's free cores.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nodegraph.environment import Environment  # noqa: E402
from nodegraph.workers import InProcessBackend, JobRequest  # noqa: E402

WORKFLOW = ROOT / "workflows" / "txt2img.json"


def job_mix(count: int, steps: int, size: int, offset: int) -> list[JobRequest]:
    base = json.loads(WORKFLOW.read_text())
    jobs = []
    for k in range(count):
        doc = json.loads(json.dumps(base))
        doc["nodes"]["3"]["inputs"].update(seed=offset + k, steps=steps)
        doc["nodes"]["5"]["inputs"].update(width=size, height=size)
        doc["nodes"]["9"]["inputs"]["filename_prefix"] = "bench/ray"
        jobs.append(JobRequest(f"bench-{offset + k}", doc))
    return jobs


def run_all(backend, jobs: list[JobRequest]) -> float:
    """Wall seconds for all jobs, submitted at once (the back end runs one per idle worker)."""
    began = time.perf_counter()
    futures = [backend.submit(job, lambda *a: None) for job in jobs]
    for future in futures:
        outcome = future.result()
        assert outcome.status == "success", outcome.errors
    return time.perf_counter() - began


def one_at_a_time(backend, jobs: list[JobRequest]) -> list[float]:
    overheads = []
    for job in jobs:
        at = time.perf_counter()
        outcome = backend.submit(job, lambda *a: None).result()
        assert outcome.status == "success", outcome.errors
        overheads.append(time.perf_counter() - at - outcome.run_seconds)
    return overheads


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--address", default=None, help="a Ray cluster ('auto', ray://...); default: a local Ray")
    args = parser.parse_args()
    counts = [int(x) for x in args.workers.split(",")]

    import ray
    import torch

    from nodegraph.distributed import RayBackend

    env = Environment.create(base=".", output=str(ROOT / "output"))
    torch.set_num_threads(1)  # one core per worker, the same in-process: a fair per-job comparison
    local = InProcessBackend(env)
    local.start()
    one_at_a_time(local, job_mix(2, args.steps, args.size, 0))  # warm: model load
    in_process = one_at_a_time(local, job_mix(6, args.steps, args.size, 100))
    rows = []
    for n in counts:
        backend = RayBackend(env, address=args.address, workers=n, num_cpus=None if args.address else max(counts))
        backend.start()
        run_all(backend, job_mix(n, args.steps, args.size, 1000 * n))  # one warm-up job per worker
        wall = run_all(backend, job_mix(args.jobs, args.steps, args.size, 1000 * n + 100))
        overhead = one_at_a_time(backend, job_mix(6, args.steps, args.size, 1000 * n + 500)) if n == counts[0] else None
        rows.append((n, args.jobs / wall, overhead))
        backend.close()
    device = str(env.devices.device)
    print(f"\nRay scale-out, {args.jobs} txt2img jobs ({args.size}x{args.size}, {args.steps} steps), device {device}, "
          f"{time.strftime('%Y-%m-%d')}")
    print(f"{'workers':>7} | {'images/s':>8} | {'speed-up':>8} | {'efficiency':>10} | {'per added worker':>16}")
    base = rows[0][1]
    previous = None
    for n, rate, _ in rows:
        added = "" if previous is None else f"{(rate - previous[1]) / (base * (n - previous[0])):.2f}"
        print(f"{n:>7} | {rate:>8.3f} | {rate / base:>8.2f} | {rate / (base * n):>10.2f} | {added:>16}")
        previous = (n, rate)
    ray_overhead = rows[0][2]
    print(f"\nper-job overhead (latency - run time, median of 6 jobs run one at a time): "
          f"in-process {1000 * statistics.median(in_process):.1f} ms, "
          f"Ray {1000 * statistics.median(ray_overhead):.1f} ms "
          f"(+{1000 * (statistics.median(ray_overhead) - statistics.median(in_process)):.1f} ms)")
    ray.shutdown()


if __name__ == "__main__":
    main()
