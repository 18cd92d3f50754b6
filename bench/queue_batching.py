"""Cross-job batching through the server: jobs/s of a queue of txt2img jobs, with and without.

    python bench/queue_batching.py [--jobs 8] [--steps 20] [--size 128] [--reps 3] [--process] [--device cpu]

Starts the server twice (in this process, on free loopback ports, temporary folders): with
`batch_window_ms` 0 (one job at a time) and with batching on; rounds alternate between them, each
queues `--jobs` single-image txt2img jobs of workflows/txt2img.json (the embedded default model;
seeds, prompts and CFGs differ) while the queue is paused, resumes it and times until every job
has finished. The output cache is
cleared before each round, so every job samples (loaded models stay). Jobs run on a thread of the
server, or in its worker process with --process (as `nodegraph serve` by default).

On a CPU shared with other work, run it with OMP_NUM_THREADS=1: two OpenMP threads on two busy cores
made each job alone 10-20× slower on the build machine (2026-11-25), which swamps the comparison.
Measured there (OMP_NUM_THREADS=1, --jobs 4 --steps 10 --size 64 --reps 3): one at a time 2.82 s
(1.42 jobs/s), batched 1.45 s (2.76 jobs/s), 1.95×.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPTS = ["a red circle on a blue background", "a yellow square on a green background",
           "a green triangle on a red background", "a blue circle on a yellow background"]


def jobs_of(n: int, steps: int, size: int, seed0: int) -> list[dict]:
    base = json.loads((ROOT / "workflows" / "txt2img.json").read_text())
    docs = []
    for i in range(n):
        doc = json.loads(json.dumps(base))
        nodes = doc["nodes"]
        nodes["3"]["inputs"].update(seed=seed0 + i, steps=steps, cfg=4.0 + i % 4)
        nodes["6"]["inputs"]["text"] = PROMPTS[i % len(PROMPTS)]
        nodes["5"]["inputs"].update(width=size, height=size)
        nodes["9"]["inputs"]["filename_prefix"] = f"bench{i}"
        docs.append(doc)
    return docs


class Server:
    """The server in a thread of this process with a given batch window."""

    def __init__(self, window_ms: float, args, base: Path) -> None:
        import httpx

        from nodegraph.environment import Environment
        from nodegraph.server import free_port_socket, make_server

        self.window_ms, self.args = window_ms, args
        env = Environment.create(base=base, device=args.device)
        sock = free_port_socket()
        port = sock.getsockname()[1]
        self.server = make_server(env, "127.0.0.1", port, None, base / f"data-{window_ms:g}", log_level="warning",
                                  ui_dir=base / "no-ui", in_process=not args.process, batch_window_ms=window_ms)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)

    def round(self, rnd: int) -> float:
        """Seconds from resuming the queue of --jobs jobs to the last one finished."""
        http, args = self.http, self.args
        http.post("/v1/free", json={"unload_models": False, "free_memory": True})
        http.post("/v1/queue/pause")
        ids = [http.post("/v1/jobs", json={"workflow": doc}).json()["job_id"]
               for doc in jobs_of(args.jobs, args.steps, args.size, 1000 * rnd)]
        t0 = time.perf_counter()
        http.post("/v1/queue/resume")
        for job_id in ids:
            while (job := http.get(f"/v1/jobs/{job_id}").json())["status"] in ("pending", "running"):
                time.sleep(0.01)
            assert job["status"] == "success", job["errors"]
        elapsed = time.perf_counter() - t0
        label = "cold" if rnd == 0 else f"round {rnd}"
        print(f"window {self.window_ms:g} ms, {label}: {elapsed:.2f} s, {args.jobs / elapsed:.2f} jobs/s", flush=True)
        return elapsed

    def close(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(30)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--jobs", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--window-ms", type=float, default=20.0, help="the batch window of the batching run")
    p.add_argument("--process", action="store_true", help="jobs in the server's worker process")
    p.add_argument("--device", default=None)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for name in ("models", "output", "input", "temp"):
            (base / name).mkdir()
        servers = [Server(window, args, base) for window in (0.0, args.window_ms)]
        results: dict[float, list[float]] = {0.0: [], args.window_ms: []}
        try:
            for rnd in range(1 + args.reps):  # interleaved; round 0 loads the model: not counted
                for server in servers if rnd % 2 == 0 else servers[::-1]:
                    elapsed = server.round(rnd)
                    if rnd:
                        results[server.window_ms].append(elapsed)
        finally:
            for server in servers:
                server.close()
    off, on = (statistics.median(results[w]) for w in (0.0, args.window_ms))
    print(f"\n{args.jobs} queued txt2img jobs, {args.size}², {args.steps} steps, median of {args.reps}: "
          f"one at a time {off:.2f} s ({args.jobs / off:.2f} jobs/s), batched {on:.2f} s "
          f"({args.jobs / on:.2f} jobs/s): {off / on:.2f}×")


if __name__ == "__main__":
    main()
