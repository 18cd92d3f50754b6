"""The Ray back end on a local Ray cluster of CPU workers (issue 16), through the real server.

One Ray (3 CPU actors) per module keeps the cost to one cluster start. Jobs are the test
plugin's GradientSteps (a delay per step makes "mid-job" reachable) and the shipped default
checkpoint for affinity (its ModelFile input names the checkpoint)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from nodegraph.distributed import RayBackend, model_files_of  # noqa: E402
from nodegraph.sweep import expand, parse_sweep, run_jobs  # noqa: E402

from tests.server.conftest import ServerThread, make_env  # noqa: E402
from tests.server.helpers import Events, picture_workflow, submit, wait_finished  # noqa: E402

pytestmark = pytest.mark.slow
WORKERS = 3
ROOT = Path(__file__).resolve().parents[2]
TXT2IMG = ROOT / "workflows" / "txt2img.json"
WEIGHTS = ROOT / "nodes" / "diffusion" / "weights" / "nodegraph-default.safetensors"


def txt2img(seed: int, steps: int = 2) -> dict:
    doc = json.loads(TXT2IMG.read_text())
    doc["nodes"]["3"]["inputs"].update(seed=seed, steps=steps)
    doc["nodes"]["5"]["inputs"].update(width=64, height=64)
    return doc


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, builtin_registry):
    base = tmp_path_factory.mktemp("ray")
    env = make_env(base / "base", builtin_registry)
    (base / "base" / "models" / "checkpoints").mkdir(parents=True)
    (base / "base" / "models" / "checkpoints" / WEIGHTS.name).symlink_to(WEIGHTS)
    # one CPU spare: the restart test's own worker
    backend = RayBackend(env, workers=WORKERS, num_cpus=WORKERS + 1)
    server = ServerThread(env, base / "data", ui_dir=base / "no-ui", backend=backend, in_process=False)
    with server:
        deadline = time.monotonic() + 120
        while not backend._started and time.monotonic() < deadline:
            time.sleep(0.1)
        yield server, backend, env
    ray.shutdown()




def worker_of(backend, job_id, timeout=30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for w in backend._workers:
            if w.job == job_id:
                return w.name
        time.sleep(0.02)
    raise TimeoutError(f"job {job_id} never reached a worker")


def test_jobs_spread_over_the_workers_with_in_process_event_shapes(cluster):
    server, backend, env = cluster
    events = Events(server.ws_url, "spread")
    with server.client() as http:
        ids = [submit(http, picture_workflow(steps=3, delay=0.4, seed=i, prefix="spread"), "spread") for i in range(3)]
        placed = {worker_of(backend, job_id) for job_id in ids}
        jobs = [wait_finished(http, job_id) for job_id in ids]
        cluster_info = http.get("/v1/cluster").json()
    seen = [e for e, d in events.until_done(ids[-1], timeout=60) if d.get("prompt_id") == ids[-1]]
    events.close()
    assert len(placed) == WORKERS  # three jobs in flight at once, one per worker
    assert all(job["status"] == "success" for job in jobs), [j["errors"] for j in jobs]
    # the same order as the in-process path (tests/server/test_worker_process.py)
    assert seen == ["execution_start", "execution_cached", "executing", "progress", "progress", "progress",
                    "executing", "executed", "execution_success", "executing"]
    files = {job["outputs"]["2"]["images"][0]["filename"] for job in jobs}
    assert len(files) == 3 and all((env.folders.output / name).is_file() for name in files)  # none overwritten
    assert cluster_info["backend"] == "ray" and len(cluster_info["workers"]) == WORKERS
    assert all(w["device"] == "cpu" and w["alive"] for w in cluster_info["workers"])


def test_a_job_goes_to_the_worker_that_holds_its_checkpoint(cluster):
    server, backend, env = cluster
    assert model_files_of(txt2img(1), env.registry) == {("checkpoints", "nodegraph-default.safetensors")}
    with server.client() as http:
        first = submit(http, txt2img(1))
        warm = worker_of(backend, first)
        assert wait_finished(http, first)["status"] == "success"
        second = submit(http, txt2img(2))
        assert worker_of(backend, second) == warm
        assert wait_finished(http, second)["status"] == "success"
        workers = {w["name"]: w for w in http.get("/v1/cluster").json()["workers"]}
    assert workers[warm]["models"] == ["checkpoints/nodegraph-default.safetensors"]


def test_a_worker_killed_mid_job_the_job_completes_elsewhere(cluster):
    server, backend, env = cluster
    events = Events(server.ws_url, "kill")
    with server.client() as http:
        job_id = submit(http, picture_workflow(steps=6, delay=0.3, seed=99, prefix="kill"), "kill")
        events.read_until(lambda e, d: e == "progress" and d.get("prompt_id") == job_id, timeout=60)
        victim = backend.kill_worker(job_id)
        assert victim is not None
        job = wait_finished(http, job_id)
        assert job["status"] == "success", job["errors"]
        deadline = time.monotonic() + 90  # a fresh actor takes the dead one's place
        while time.monotonic() < deadline:
            rows = http.get("/v1/cluster").json()["workers"]
            if victim not in [w["name"] for w in rows]:
                break
            assert [w["alive"] for w in rows if w["name"] == victim] == [False]
            time.sleep(0.5)
        names = [w["name"] for w in rows if w["alive"]]
    seen = events.until_done(job_id, timeout=60)
    events.close()
    warnings = [d for e, d in server.state.store.get(job_id).messages if e == "warning"]  # the history record
    assert len(warnings) == 1 and victim in warnings[0]["message"] and "runs again" in warnings[0]["message"]
    assert [e for e, d in seen if e == "execution_start" and d.get("prompt_id") == job_id] == ["execution_start"]
    assert victim not in names and len(names) == WORKERS and backend.deaths == 1
    assert (env.folders.output / job["outputs"]["2"]["images"][0]["filename"]).is_file()


def test_a_job_that_kills_two_workers_fails_with_a_clear_error(cluster):
    server, backend, env = cluster
    with server.client() as http:
        job_id = submit(http, picture_workflow(steps=8, delay=0.3, seed=98, prefix="twice"))
        killed = []
        for _ in range(2):
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                name = backend.kill_worker(job_id)
                if name is not None and name not in killed:
                    killed.append(name)
                    break
                time.sleep(0.2)
        job = wait_finished(http, job_id)
    assert job["status"] == "error"
    assert job["errors"][0]["exception_type"] == "WorkerDied"
    assert "killed 2 workers" in job["errors"][0]["exception_message"]


def test_interrupt_reaches_the_remote_worker(cluster):
    server, backend, env = cluster
    with server.client() as http:
        job_id = submit(http, picture_workflow(steps=50, delay=0.2, seed=97, prefix="stop"))
        worker_of(backend, job_id, timeout=90)
        time.sleep(0.5)
        assert http.post("/v1/interrupt", json={"job_id": job_id}).json()["interrupted"]
        began = time.monotonic()
        job = wait_finished(http, job_id)
    assert job["status"] == "interrupted"
    assert time.monotonic() - began < 5  # at the next progress point, not after 50 steps


def test_a_sweep_of_12_jobs_writes_its_manifest(cluster, tmp_path):
    server, backend, env = cluster
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\n\na blue square\na green triangle\n")
    doc = picture_workflow(steps=1, prefix="sweep")
    jobs = expand(doc, [parse_sweep("seed=1..4"), parse_sweep("1.red=10,20,30")])
    assert len(jobs) == 12 and jobs[5][0] == {"seed": 2, "1.red": 30}
    done = []
    manifest = run_jobs(jobs, backend, env.folders.output / "sweep-out", done.append, source="picture")
    assert len(done) == 12 and all(o.status == "success" for o in done)
    written = json.loads((env.folders.output / "sweep-out" / "manifest.json").read_text())
    assert written == manifest and [e["parameters"] for e in written["jobs"]] == [p for p, _ in jobs]
    files = [f for e in written["jobs"] for f in e["files"]]
    assert len(set(files)) == 12 and all((env.folders.output / f).is_file() for f in files)
    assert parse_sweep(f"6.text=@{prompts}")[1] == ["a red circle", "a blue square", "a green triangle"]


def test_server_restart_keeps_queued_and_running_jobs(cluster, tmp_path):
    _, _, env = cluster
    data = tmp_path / "data"
    first = ServerThread(env, data, ui_dir=tmp_path / "no-ui", backend=RayBackend(env, workers=1), in_process=False)
    with first, first.client() as http:
        running = submit(http, picture_workflow(steps=40, delay=0.2, seed=96, prefix="restart"))
        worker_of(first.state.worker.backend, running, timeout=90)
        http.post("/v1/queue/pause")
        queued = [submit(http, picture_workflow(steps=1, seed=95 - i, prefix="restart")) for i in range(2)]
    second = ServerThread(env, data, ui_dir=tmp_path / "no-ui", backend=RayBackend(env, workers=1), in_process=False)
    with second, second.client() as http:
        assert {j["job_id"] for j in http.get("/v1/queue").json()["pending"]} >= {running, *queued}
        http.post("/v1/queue/resume")
        jobs = [wait_finished(http, job_id) for job_id in (running, *queued)]
    assert [j["status"] for j in jobs] == ["success"] * 3, [j["errors"] for j in jobs]
