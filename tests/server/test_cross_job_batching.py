"""Cross-job batching through the server (issue 15): queued txt2img jobs whose KSampler runs share model, shape,
steps and sampler are sampled as one batch, each with its own seed, prompt and CFG, and each gets the image it
gets alone; the `batched` event and each job's history say so. A job of another shape runs in the same hand-over
without joining the batch; a job failing or interrupted leaves the others' results; a worker process that dies
mid-batch fails each of its jobs by the usual rule, and one killed for a batch-mate's ignored interrupt re-runs
the others.

A tiny random SD1 checkpoint (tests/tiny_models.py) keeps each job well under a second on the CPU. Images of a
batch equal the images alone up to one level where the CPU kernels' blocking depends on the batch size (as in
tests/diffusion/test_cross_job_batching.py); a job that ends up alone in its batch is bit-identical.
"""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image

from tests.server.conftest import ServerThread, make_env
from tests.server.helpers import L, Events, submit, wait_finished
from tests.tiny_models import save_tiny_checkpoint

STEPS = 6


def txt2img(seed: int, text: str, cfg: float, width: int = 64, height: int = 64, prefix: str = "cj",
            ckpt: str = "tiny.safetensors") -> dict:
    return {"version": 1, "nodes": {
        "4": {"type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "6": {"type": "CLIPTextEncode", "inputs": {"text": text, "clip": L("4", 1)}},
        "7": {"type": "CLIPTextEncode", "inputs": {"text": "", "clip": L("4", 1)}},
        "5": {"type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": 1}},
        "3": {"type": "KSampler", "inputs": {"model": L("4", 0), "seed": seed, "steps": STEPS, "cfg": cfg,
                                             "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
                                             "positive": L("6"), "negative": L("7"), "latent_image": L("5")}},
        "8": {"type": "VAEDecode", "inputs": {"samples": L("3"), "vae": L("4", 2)}},
        "9": {"type": "SaveImage", "inputs": {"images": L("8"), "filename_prefix": prefix}}}}


JOBS = {  # seeds, prompts and CFGs differ: one batch
    "a": dict(seed=42, text="a red circle on a blue background", cfg=6.0),
    "b": dict(seed=7, text="a yellow square on a green background", cfg=4.0),
    "c": dict(seed=99, text="a green triangle on a red background", cfg=7.5),
    "d": dict(seed=5, text="a blue circle on a yellow background", cfg=3.0),
    "wide": dict(seed=11, text="a wide picture", cfg=6.0, width=96),  # another shape: not merged
}


def write_checkpoints(base):
    folder = base / "models" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    save_tiny_checkpoint(folder / "tiny.safetensors")
    (folder / "broken.safetensors").write_bytes(b"not a checkpoint at all" * 10)  # fails when loaded, not before


@pytest.fixture(scope="module")
def batching_server(tmp_path_factory, builtin_registry):
    base = tmp_path_factory.mktemp("cross-job")
    env = make_env(base / "base", builtin_registry)
    write_checkpoints(base / "base")
    with ServerThread(env, base / "data", ui_dir=base / "no-ui", batch_window_ms=50) as s:
        yield s


def image_of(server, job: dict) -> np.ndarray:
    assert job["status"] == "success", job["errors"]
    (image,) = job["outputs"]["9"]["images"]
    return np.asarray(Image.open(server.state.env.folders.output / image["subfolder"] / image["filename"]))


@pytest.fixture(scope="module")
def alone(batching_server):
    """Each job run by itself (the queue holds nothing else, so the window closes on a batch of one)."""
    images, names = {}, {}
    events = Events(batching_server.ws_url, "alone")
    with batching_server.client() as http:
        for key, job in JOBS.items():
            job_id = submit(http, txt2img(prefix=f"alone-{key}", **job), client="alone")
            names[key] = [e for e, _ in events.until_done(job_id, timeout=120)]
            images[key] = image_of(batching_server, wait_finished(http, job_id))
    events.close()
    assert "batched" not in names["a"]
    return images, names


def until_all_done(events: Events, job_ids, timeout: float = 60.0) -> None:
    """Read the websocket until every job's final executing {node: None} came (in whatever order)."""
    def finished():
        return {d.get("prompt_id") for e, d in events.events if e == "executing" and d.get("node") is None}

    left = set(job_ids) - finished()
    if left:
        events.read_until(lambda e, d: not set(job_ids) - finished(), timeout)


def run_queued(server, jobs: dict[str, dict], client: str) -> tuple[dict, dict, Events]:
    """Queue the jobs while the queue is paused (with a cleared output cache), then let them go: the
    dispatcher takes them in one hand-over. Their job records and job ids by key."""
    events = Events(server.ws_url, client)
    with server.client() as http:
        assert http.post("/v1/free", json={"unload_models": False, "free_memory": True}).json()["deferred"] is False
        http.post("/v1/queue/pause")
        try:
            ids = {key: submit(http, workflow, client=client) for key, workflow in jobs.items()}
        finally:
            http.post("/v1/queue/resume")
        records = {key: wait_finished(http, job_id) for key, job_id in ids.items()}
        until_all_done(events, ids.values())
    events.close()
    return records, ids, events


def assert_same_picture(batched: np.ndarray, single: np.ndarray, key: str) -> None:
    diff = np.abs(batched.astype(int) - single.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99, (key, diff.max(), (diff == 0).mean())


def test_queued_jobs_are_sampled_together_and_give_the_images_they_give_alone(batching_server, alone):
    references, alone_names = alone
    keys = ["a", "b", "wide", "c", "d"]  # the other shape in the middle of the queue
    records, ids, events = run_queued(batching_server, {k: txt2img(prefix=f"batch-{k}", **JOBS[k]) for k in keys},
                                      "together")
    assert batching_server.state.worker.batches_run[-1] == 5  # one hand-over
    for key in keys:
        image = image_of(batching_server, records[key])
        if key == "wide":
            assert np.array_equal(image, references[key])  # alone in its batch: the very same arithmetic
        else:
            assert_same_picture(image, references[key], key)
    batched = {key: [d for e, d in events.events if e == "batched" and d["prompt_id"] == ids[key]] for key in keys}
    four = [ids[k] for k in ("a", "b", "c", "d")]
    for key in ("a", "b", "c", "d"):
        assert [(d["node"], d["size"], d["jobs"]) for d in batched[key]] == [("3", 4, four)], key
    assert batched["wide"] == []
    for key in keys:  # each job's own events, in the order of a job alone (plus `batched` after its sampler)
        names = [e for e, d in events.events if d.get("prompt_id") == ids[key] and e != "batched"]
        assert names == alone_names[key], key
    with batching_server.client() as http:  # ComfyUI's /history keeps it in the job's status messages
        history = http.get(f"/history/{ids['b']}").json()[ids["b"]]
    messages = history["status"]["messages"]
    assert [m[1]["jobs"] for m in messages if m[0] == "batched"] == [four]
    assert history["status"]["status_str"] == "success"


def test_a_failing_and_an_interrupted_job_leave_the_others_results(batching_server, alone):
    references, _ = alone
    state = batching_server.state
    jobs = {"a": txt2img(prefix="f-a", **JOBS["a"]),
            "bad": txt2img(prefix="f-bad", ckpt="broken.safetensors", **JOBS["b"]),
            "c": txt2img(prefix="f-c", **JOBS["c"]),
            "d": txt2img(prefix="f-d", **JOBS["d"])}
    stop = {}
    post = state.hub.post

    def interrupting_post(event, data, *args, **kw):  # interrupt job c at its first sampling step
        if event == "progress" and data.get("prompt_id") == stop.get("c") and data.get("value") == 1:
            state.worker.interrupt(stop["c"])
        return post(event, data, *args, **kw)

    events = Events(batching_server.ws_url, "faults")
    state.hub.post = interrupting_post
    try:
        with batching_server.client() as http:
            http.post("/v1/free", json={"unload_models": False, "free_memory": True})
            http.post("/v1/queue/pause")
            try:
                ids = {key: submit(http, workflow, client="faults") for key, workflow in jobs.items()}
                stop["c"] = ids["c"]
            finally:
                http.post("/v1/queue/resume")
            records = {key: wait_finished(http, job_id) for key, job_id in ids.items()}
            until_all_done(events, ids.values())
    finally:
        state.hub.post = post
        events.close()
    assert records["bad"]["status"] == "error"
    assert records["bad"]["errors"][0]["node_id"] == "4", records["bad"]["errors"]
    assert records["c"]["status"] == "interrupted", records["c"]
    for key in ("a", "d"):
        assert_same_picture(image_of(batching_server, records[key]), references[key], key)
    batched = [d for e, d in events.events if e == "batched" and d["prompt_id"] == ids["a"]]
    assert [d["jobs"] for d in batched] == [[ids["a"], ids["c"], ids["d"]]]  # c sampled with them until it stopped


def test_batching_is_off_with_a_zero_window(tmp_path, builtin_registry):
    """--batch-window-ms 0 (the CPU default, and --no-cross-job-batching): one job at a time, as before."""
    env = make_env(tmp_path / "base", builtin_registry)
    with ServerThread(env, tmp_path / "data", ui_dir=tmp_path / "no-ui", batch_window_ms=0) as server:
        assert server.state.worker.batching is False and server.state.worker.batch_window == 0
    with ServerThread(env, tmp_path / "data2", ui_dir=tmp_path / "no-ui") as server:  # default on this CPU
        assert server.state.worker.batching is False


@pytest.fixture(scope="module")
def process_batching_server(tmp_path_factory, builtin_registry):
    base = tmp_path_factory.mktemp("cross-job-process")
    env = make_env(base / "base", builtin_registry)
    write_checkpoints(base / "base")
    with ServerThread(env, base / "data", ui_dir=base / "no-ui", in_process=False, interrupt_grace=1.0,
                      batch_window_ms=50) as s:
        yield s


@pytest.mark.slow  # a worker process (seconds to start) killed and restarted twice
def test_the_worker_process_dies_mid_batch_and_nothing_is_lost(process_batching_server):
    server = process_batching_server
    state = server.state
    killed = []
    post = state.hub.post

    def killing_post(event, data, *args, **kw):  # the worker dies while the batch samples
        if event == "progress" and data.get("node") == "3" and data.get("value") == 2 and not killed:
            killed.append(state.worker.backend.kill_worker())
        return post(event, data, *args, **kw)

    with server.client() as http:
        warm = wait_finished(http, submit(http, txt2img(prefix="warm", **JOBS["b"])))  # the worker started
        assert warm["status"] == "success", warm["errors"]
        state.hub.post = killing_post
        try:
            http.post("/v1/free", json={"unload_models": False, "free_memory": True})
            http.post("/v1/queue/pause")
            try:
                ids = [submit(http, txt2img(prefix=f"die-{k}", **JOBS[k])) for k in ("a", "c", "d")]
            finally:
                http.post("/v1/queue/resume")
            records = [wait_finished(http, job_id) for job_id in ids]
        finally:
            state.hub.post = post
        assert killed and killed[0] is not None
        for record in records:  # every job of the batch ends, each by the worker-death rule
            assert record["status"] == "error", record
            assert record["errors"][0]["exception_type"] == "WorkerDied", record["errors"]
        after = wait_finished(http, submit(http, txt2img(prefix="after", **JOBS["b"])))
        assert after["status"] == "success", after["errors"]


@pytest.mark.slow  # the worker is killed after an ignored interrupt and restarted
def test_a_batch_mate_of_a_job_that_ignores_its_interrupt_runs_again(process_batching_server):
    server = process_batching_server
    stubborn = {"version": 1, "nodes": {"1": {"type": "Stubborn", "inputs": {"seconds": 30.0}},
                                        "2": {"type": "PreviewAny", "inputs": {"source": L("1")}}}}
    with server.client() as http:
        http.post("/v1/queue/pause")
        try:
            stuck = submit(http, stubborn)
            mate = submit(http, txt2img(prefix="mate", **JOBS["d"]))
        finally:
            http.post("/v1/queue/resume")
        deadline = time.monotonic() + 60
        while http.get(f"/v1/jobs/{stuck}").json()["status"] != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # inside the stubborn node
        assert http.post("/v1/interrupt", json={"job_id": stuck}).json()["interrupted"]
        stuck_job = wait_finished(http, stuck)
        mate_job = wait_finished(http, mate)
    assert stuck_job["status"] == "interrupted"
    assert mate_job["status"] == "success", mate_job["errors"]  # re-queued and run on the fresh worker


def comfy_prompt(workflow: dict) -> dict:
    """A native txt2img document in ComfyUI's API format."""
    def value(v):
        return [v["node"], v["output"]] if isinstance(v, dict) else v

    return {node_id: {"class_type": node["type"], "inputs": {k: value(v) for k, v in node["inputs"].items()}}
            for node_id, node in workflow["nodes"].items()}


def test_comfyui_clients_see_each_prompt_in_comfyuis_order(batching_server, alone):
    """ComfyUI's /ws: the messages of each prompt of a batch, in the order of that prompt alone (main.py
    prompt_worker and execution.py: execution_start ... execution_success, then executing None); `batched`
    is ours and goes to the native websocket only."""
    from tests.server.test_comfy_protocol import FRONTEND_FLAGS, ComfySocket

    def prompt_frames(sock, prompt_ids):
        done: set = set()
        while done != set(prompt_ids):
            frame = sock.ws.recv()
            if isinstance(frame, bytes):
                continue
            message = json.loads(frame)
            sock.frames.append(message)
            if message["type"] == "executing" and message["data"].get("node") is None:
                done.add(message["data"].get("prompt_id"))
        return {pid: [m["type"] for m in sock.frames if isinstance(m.get("data"), dict)
                      and m["data"].get("prompt_id") == pid] for pid in prompt_ids}

    sock = ComfySocket(batching_server, "comfy-alone", FRONTEND_FLAGS)
    with batching_server.client() as http:
        http.post("/v1/free", json={"unload_models": False, "free_memory": True})
        single = http.post("/prompt", json={"prompt": comfy_prompt(txt2img(prefix="c-alone", **JOBS["a"])),
                                            "client_id": "comfy-alone"}).json()["prompt_id"]
        alone_names = prompt_frames(sock, [single])[single]
        sock.close()
        http.post("/v1/free", json={"unload_models": False, "free_memory": True})
        sock = ComfySocket(batching_server, "comfy", FRONTEND_FLAGS)
        http.post("/v1/queue/pause")
        try:
            ids = [http.post("/prompt", json={"prompt": comfy_prompt(txt2img(prefix=f"c-{k}", **JOBS[k])),
                                              "client_id": "comfy"}).json()["prompt_id"] for k in ("a", "b", "c")]
        finally:
            http.post("/v1/queue/resume")
        names = prompt_frames(sock, ids)
        sock.close()
        histories = [http.get(f"/history/{pid}").json()[pid] for pid in ids]
    assert batching_server.state.worker.batches_run[-1] == 3
    assert all(h["status"]["status_str"] == "success" for h in histories)
    assert not any(m["type"] == "batched" for m in sock.frames)
    # the first job of the batch finds nothing cached, as the job alone: the very same sequence
    assert names[ids[0]] == alone_names
    assert alone_names[:2] == ["execution_start", "execution_cached"]
    assert alone_names[-3:] == ["progress_state", "execution_success", "executing"]
    for pid in ids[1:]:  # the others find the loader and the empty negative prompt cached: fewer nodes run
        mine = names[pid]
        assert mine[:2] == alone_names[:2] and mine[-3:] == alone_names[-3:], mine
        assert mine.count("progress") == alone_names.count("progress") and mine.count("executed") == 1
