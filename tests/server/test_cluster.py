"""GET /v1/cluster (issue 16) on the single-worker back ends: the one worker, its device, the model files its
jobs loaded, its current job and throughput — the same shape the Ray back end answers with, so `nodegraph status`
and the editor's Workers tab read one format."""
from __future__ import annotations

from nodegraph import IMAGE, ModelFile, Output, node
from nodegraph.environment import Environment
from nodegraph.folders import Folders
from nodegraph.node import RunControl
from nodegraph.registry import Registry
from nodegraph.workers.base import JobRequest
from nodegraph.workers.runner import JobRunner
from tests.server.helpers import submit, tiny_workflow, wait_finished


@node(category="test", output_node=True)
class LoraFileSize:
    """An image whose width is the LoRA file's size in bytes (reads nothing else of it)."""
    inputs = [ModelFile("lora_name", "loras")]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, lora_name):
        import torch

        return torch.zeros(1, 1, ctx.models.find("loras", lora_name).stat().st_size, 3)


def test_the_runner_tracks_the_model_files_its_jobs_used_until_models_are_unloaded(tmp_path):
    (tmp_path / "models" / "loras").mkdir(parents=True)
    (tmp_path / "models" / "loras" / "style.safetensors").write_bytes(b"12345")
    registry = Registry()
    registry.add_class(LoraFileSize, "test")
    runner = JobRunner(Environment(registry=registry, folders=Folders(tmp_path)))
    doc = {"version": 1, "nodes": {"1": {"type": "LoraFileSize", "inputs": {"lora_name": "style.safetensors"}}}}
    outcome = runner.run(JobRequest("j1", doc), RunControl(), lambda *a: None)
    assert outcome.status == "success", outcome.errors
    stats = runner.stats()
    assert stats["models"] == ["loras/style.safetensors"] and stats["jobs_run"] == 1 and stats["busy_seconds"] > 0
    runner.free(unload_models=True, free_memory=False)
    assert runner.stats()["models"] == []


def test_cluster_lists_the_worker_with_its_device_and_throughput(server, http):
    empty = http.get("/v1/cluster").json()
    assert empty["backend"] == "in-process" and len(empty["workers"]) == 1 and empty["running"] == []
    for seed in range(3):
        assert wait_finished(http, submit(http, tiny_workflow(seed)))["status"] == "success"
    reply = http.get("/v1/cluster").json()
    (worker,) = reply["workers"]
    assert worker["device"] == "cpu" and worker["alive"] and worker["current_job"] is None
    assert worker["jobs_run"] == 3 and worker["busy_seconds"] > 0
    assert abs(worker["jobs_per_busy_second"] - 3 / worker["busy_seconds"]) < 1e-6
    assert worker["models"] == []  # tiny_workflow loads no model file
