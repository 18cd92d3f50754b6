"""Server load test: many websocket clients, many small queued jobs, loopback only.

    python bench/server_load.py [--clients 50] [--jobs 200] [--url http://127.0.0.1:PORT] [--in-process | --compare]

Without --url it starts `python -m nodegraph.server` on a free loopback port with temporary
folders and stops it afterwards: jobs run in its worker process (the default), on a thread of the
server with --in-process, or both one after the other with --compare. With a worker process it
prints the process boundary's cost per job, as the server measures it: the time from handing a job
to the worker to getting its result back, minus the time the worker spent running it (sending
the job, events and previews over the pipe, the result back). Half the clients listen on the native socket (/v1/ws), half on
ComfyUI's (/ws); every job is submitted with POST /prompt under one client's id. It checks that
nothing is lost (every job succeeds and its submitter sees its whole event sequence) and that
every client gets exactly its own jobs' events, then prints latencies:

- POST /prompt: request to response, as the client sees it: the first jobs one at a time
  ("alone"), then all the others at once ("burst": latency there is mostly waiting in line);
- event delivery: server timestamp of the event (taken in the worker thread) to its arrival at
  the client; same host, same clock;
- job: from the POST /prompt being sent to the client seeing `executing {node: None}`.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import websockets

ROOT = Path(__file__).resolve().parents[1]
# what the submitter of one small_job must see, in this order (node 1 runs, node 2 runs and shows its image)
EXPECTED = ["execution_start", "execution_cached", "executing", "executing", "executed", "execution_success",
            "executing"]


def small_job(k: int) -> dict:
    """ComfyUI API format: an 8x8 image of a colour unique to the job, previewed (a temp PNG)."""
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": k}},
            "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}


@dataclass
class Client:
    client_id: str
    flavour: str  # "native" or "comfy"
    events: list[tuple[str, dict]] = field(default_factory=list)
    delivery_ms: list[float] = field(default_factory=list)
    done: dict[str, float] = field(default_factory=dict)  # job id -> arrival time of its final event
    expected: set[str] = field(default_factory=set)
    all_done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Report:
    clients: int
    jobs: int
    solo_post_ms: list[float]  # POST /prompt one at a time
    post_ms: list[float]  # POST /prompt, the rest of the jobs sent all at once
    delivery_ms: list[float]
    job_ms: list[float]
    seconds: float
    lost: list[str]  # job ids whose events or result are missing
    foreign: list[tuple[str, str]]  # (client, job id) events a client got for someone else's job
    failed: list[str]  # jobs that did not succeed

    @property
    def ok(self) -> bool:
        return not (self.lost or self.foreign or self.failed)

    def table(self) -> str:
        def row(name, values):
            if not values:
                return f"| {name:<22} | {'-':>8} | {'-':>8} | {'-':>8} | {'-':>8} | {0:>6} |"
            q = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else [values[0]] * 99
            return (f"| {name:<22} | {statistics.median(values):8.1f} | {q[89]:8.1f} | {q[98]:8.1f} | "
                    f"{max(values):8.1f} | {len(values):>6} |")

        lines = [f"server load: {self.clients} websocket clients, {self.jobs} jobs, {self.seconds:.2f} s "
                 f"({self.jobs / self.seconds:.1f} jobs/s)",
                 "| latency (ms)           |      p50 |      p90 |      p99 |      max |      n |",
                 "|------------------------|----------|----------|----------|----------|--------|",
                 row("POST /prompt, alone", self.solo_post_ms), row("POST /prompt, burst", self.post_ms),
                 row("event delivery", self.delivery_ms),
                 row("job submit -> done", self.job_ms),
                 f"lost jobs: {len(self.lost)}, events to the wrong client: {len(self.foreign)}, "
                 f"failed jobs: {len(self.failed)}"]
        return "\n".join(lines)


async def _listen(ws_base: str, client: Client, token: str | None, on_open) -> None:
    path = f"/v1/ws?client_id={client.client_id}" if client.flavour == "native" else f"/ws?clientId={client.client_id}"
    if token:
        path += f"&token={token}"
    async with websockets.connect(ws_base + path, max_size=None) as ws:
        on_open()
        async for frame in ws:
            arrived = time.time() * 1000
            if isinstance(frame, bytes):
                continue
            message = json.loads(frame)
            event, data = message["type"], message["data"]
            client.events.append((event, data))
            if "timestamp" in data and event != "status":
                client.delivery_ms.append(arrived - data["timestamp"])
            if event == "executing" and data.get("node") is None:
                client.done[data["prompt_id"]] = time.perf_counter()
                if client.expected and client.expected <= set(client.done):
                    client.all_done.set()


async def run_load(url: str, clients: int = 50, jobs: int = 200, token: str | None = None,
                   timeout: float = 300.0) -> Report:
    ws_base = url.replace("http://", "ws://", 1)
    people = [Client(f"load-{i}", "native" if i % 2 == 0 else "comfy") for i in range(clients)]
    ready, opened = asyncio.Event(), []

    def on_open() -> None:
        opened.append(1)
        if len(opened) == clients:
            ready.set()

    listeners = [asyncio.create_task(_listen(ws_base, c, token, on_open)) for c in people]
    await asyncio.wait_for(ready.wait(), 60)

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    owner: dict[str, Client] = {}
    sent: dict[str, float] = {}
    post_ms: list[float] = []
    plan = [(k, people[k % clients]) for k in range(jobs)]
    for k, person in plan:
        person.expected.add(f"job-{k}")
    started = time.perf_counter()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as http:
        async def post(k: int, person: Client) -> None:
            job_id = f"job-{k}"
            body = {"prompt": small_job(k), "client_id": person.client_id, "prompt_id": job_id}
            t0 = time.perf_counter()
            sent[job_id] = t0
            r = await http.post("/prompt", json=body)
            post_ms.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
            owner[r.json()["prompt_id"]] = person

        solo = min(20, jobs // 10)  # first a few one at a time (the latency of a lone request) ...
        for k, person in plan[:solo]:
            await post(k, person)
        solo_ms = post_ms[:]
        post_ms.clear()
        await asyncio.gather(*(post(k, p) for k, p in plan[solo:]))  # ... then the rest all at once
        try:
            await asyncio.wait_for(asyncio.gather(*(p.all_done.wait() for p in people if p.expected)), timeout)
        except asyncio.TimeoutError:
            pass
        seconds = time.perf_counter() - started
        await asyncio.sleep(0.2)  # let stray (wrong) events arrive before judging
        statuses = {}
        for job_id in owner:
            statuses[job_id] = (await http.get(f"/v1/jobs/{job_id}")).json()["status"]
    for task in listeners:
        task.cancel()
    await asyncio.gather(*listeners, return_exceptions=True)

    lost, foreign, job_ms, delivery = [], [], [], []
    for person in people:
        delivery.extend(person.delivery_ms)
        by_job: dict[str, list[str]] = {}
        for event, data in person.events:
            if event in ("status", "progress_state"):  # progress_state: ComfyUI's per-node view, comfy sockets only
                continue
            by_job.setdefault(data.get("prompt_id"), []).append(event)
        for job_id in by_job:
            if job_id not in person.expected:
                foreign.append((person.client_id, job_id))
        for job_id in person.expected:
            if by_job.get(job_id) != EXPECTED:
                lost.append(job_id)
            elif job_id in person.done:
                job_ms.append((person.done[job_id] - sent[job_id]) * 1000)
    failed = [job_id for job_id, status in statuses.items() if status != "success"]
    lost.extend(f"job-{k}" for k in range(jobs) if f"job-{k}" not in owner)
    return Report(clients, jobs, solo_ms, post_ms, delivery, job_ms, seconds, sorted(set(lost)), foreign, failed)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(workdir: Path, in_process: bool = False) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nodegraph.server", "--port", str(port), "--base", str(workdir),
         "--data-dir", str(workdir / "data"), "--plugins", str(workdir / "no-plugins")]
        + (["--in-process"] if in_process else []),
        cwd=str(workdir), env={**os.environ, "PYTHONPATH": str(ROOT)})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/v1/status", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not start")


def boundary_line(url: str, token: str | None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    worker = httpx.get(url + "/v1/system_stats", headers=headers, timeout=30).json().get("worker", {})
    cost = worker.get("boundary")
    if worker.get("backend") != "process" or not cost or not cost.get("jobs"):
        return f"jobs ran {worker.get('backend', 'in the server')}: no process boundary"
    verdict = "within" if cost["mean_ms"] <= 5 else "ABOVE"
    return (f"process boundary per job: mean {cost['mean_ms']:.2f} ms, median {cost['median_ms']:.2f} ms, "
            f"p95 {cost['p95_ms']:.2f} ms over {cost['jobs']} jobs ({verdict} the 5 ms target); "
            f"worker pid {worker.get('pid')}, restarts {worker.get('restarts')}")


def run_against_new_server(args, in_process: bool) -> tuple[Report, str]:
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(Path(tmp), in_process)
        try:
            report = asyncio.run(run_load(url, args.clients, args.jobs, args.token))
            return report, boundary_line(url, args.token)
        finally:
            proc.terminate()
            proc.wait(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--url", default=None, help="an already running server (loopback only)")
    parser.add_argument("--token", default=None)
    parser.add_argument("--in-process", action="store_true", help="the started server runs jobs on a thread")
    parser.add_argument("--compare", action="store_true", help="run with a worker process, then in-process")
    args = parser.parse_args(argv)
    if args.url is not None:
        if httpx.URL(args.url).host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit("the load test only runs against a loopback server")
        report = asyncio.run(run_load(args.url, args.clients, args.jobs, args.token))
        print(report.table())
        print(boundary_line(args.url, args.token))
        return 0 if report.ok else 1
    modes = [False, True] if args.compare else [args.in_process]
    reports = []
    for in_process in modes:
        report, boundary = run_against_new_server(args, in_process)
        reports.append(report)
        print(f"--- jobs {'on a thread of the server (--in-process)' if in_process else 'in a worker process'}")
        print(report.table())
        print(boundary)
    if len(reports) == 2:
        process, thread = reports
        extra = (process.seconds - thread.seconds) / process.jobs * 1000
        print(f"wall time per job, worker process minus in-process: {extra:+.2f} ms "
              f"({process.jobs / process.seconds:.1f} vs {thread.jobs / thread.seconds:.1f} jobs/s)")
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
