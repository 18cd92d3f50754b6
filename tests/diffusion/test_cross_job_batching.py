"""Cross-job batching (issue 15): queued jobs whose KSampler runs share model, shape and steps are sampled as
one batch, each with its own seed, prompt and CFG, and each job's image is the one it gets alone.
The samplers run on the CPU with the embedded default model. Each row gets the same arithmetic as alone (a batch
of one through the merged path is bit-identical); the only difference is float rounding of CPU kernels whose
blocking depends on the batch size (latents within 1e-4, pixels within one level), as for any batched run."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image

from nodegraph.batching import Cohort
from nodegraph.node import RunControl
from nodegraph.workers.base import JobRequest
from nodegraph.workers.runner import JobRunner
from nodes.diffusion.sampling import common_ksampler
from nodes.diffusion.sampling.jobs_batch import SamplerRun, batch_key, sample_runs_together
from tests.diffusion.workflow_files import load_workflow


def txt2img(seed, text, cfg, sampler="euler", batch_size=1, prefix="job"):
    return load_workflow("txt2img.json", **{"3__seed": seed, "6__text": text, "3__cfg": cfg, "3__sampler_name": sampler,
                                            "5__batch_size": batch_size, "9__filename_prefix": prefix})


JOBS = [  # seeds, prompts, CFG and batch sizes differ; the last one's sampler draws noise, so it runs alone
    dict(seed=42, text="a red circle on a blue background", cfg=6.0),
    dict(seed=7, text="a yellow square on a green background", cfg=4.0),
    dict(seed=99, text="a green triangle on a red background", cfg=6.0, batch_size=2),
    dict(seed=5, text="a blue circle on a yellow background", cfg=6.0, sampler="euler_ancestral"),
]


def pixels(env, outcome):
    assert outcome.status == "success", outcome.errors
    return [np.asarray(Image.open(env.folders.output / f["subfolder"] / f["filename"]))
            for f in outcome.outputs["9"]["images"]]


def test_jobs_run_together_give_the_images_they_give_alone(env):
    runner = JobRunner(env)
    alone = []
    for i, job in enumerate(JOBS):
        env.cache.clear()  # every job samples (models stay loaded)
        outcome = runner.run(JobRequest(f"alone{i}", txt2img(prefix=f"alone{i}", **job)), RunControl(), lambda *a: None)
        alone.append(pixels(env, outcome))
    env.cache.clear()
    events: dict[str, list] = {}

    def sink_for(job_id):
        return lambda event, data, png: events.setdefault(job_id, []).append((event, data))

    busy_before, began = runner.busy_seconds, time.perf_counter()
    together = runner.run_together([(JobRequest(f"job{i}", txt2img(prefix=f"together{i}", **job)), RunControl(),
                                     sink_for(f"job{i}")) for i, job in enumerate(JOBS)])
    # each job waited for the others inside its run: the runner was busy for the cohort's wall time, once
    assert runner.busy_seconds - busy_before <= time.perf_counter() - began
    for i, outcome in enumerate(together):
        images = pixels(env, outcome)
        assert len(images) == len(alone[i]), i
        for a, b in zip(images, alone[i]):  # float rounding of batch-size-dependent kernels: at most one level
            diff = np.abs(a.astype(int) - b.astype(int))
            assert diff.max() <= 1 and (diff == 0).mean() > 0.99, (i, diff.max(), (diff == 0).mean())
    batched = {job_id: [(d["node"], d["size"], d["prompt_id"]) for e, d in evs if e == "batched"]
               for job_id, evs in events.items()}
    for i in range(3):
        assert batched[f"job{i}"] == [("3", 3, f"job{i}")]
    assert batched["job3"] == []  # euler_ancestral: noise from one seed per batch, so never merged
    progress = [d["value"] for e, d in events["job1"] if e == "progress"]
    assert progress == list(range(1, 21))  # each job still reports its own steps


def test_sampled_together_equals_alone_latents(env, builtin_registry):
    """The sampling function itself: each run's latent equals common_ksampler's for that run, bit for bit."""
    from nodegraph.executor import Executor

    doc = txt2img(1, "a red circle on a blue background", 6.0)
    result = Executor(env).run(doc)
    model = result.value("4", 0)
    pos, neg = result.value("6", 0), result.value("7", 0)
    latent = {"samples": torch.zeros(1, 4, 16, 16)}
    runs = [SamplerRun(model, seed, 8, cfg, name, "normal", pos, neg, latent)
            for seed, cfg, name in [(1, 5.0, "dpmpp_2m"), (2, 8.0, "dpmpp_2m"), (3, 1.5, "dpmpp_2m")]]
    assert len({batch_key(r) for r in runs}) == 1 and batch_key(runs[0]) is not None
    with env.devices.use(model) as diffusion, torch.no_grad():
        together = sample_runs_together(diffusion, runs)
        for run, out in zip(runs, together):
            single = common_ksampler(diffusion, run.seed, 8, run.cfg, run.sampler_name, "normal", pos, neg, latent)
            # the same arithmetic per row; only the CPU kernels' blocking for another batch size rounds differently
            torch.testing.assert_close(out["samples"], single["samples"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("change", ["sampler", "steps", "shape", "cfg_one", "mask"])
def test_runs_that_would_change_images_are_not_merged(env, change):
    class Handle:
        info: dict = {}

    model = Handle()
    cond = [[torch.zeros(1, 77, 8), {"pooled_output": torch.zeros(1, 8)}]]
    base = SamplerRun(model, 1, 20, 7.0, "euler", "normal", cond, cond, {"samples": torch.zeros(1, 4, 8, 8)})
    other = SamplerRun(**{**base.__dict__})
    if change == "sampler":
        other.sampler_name = "euler_ancestral"
    elif change == "steps":
        other.steps = 21
    elif change == "shape":
        other.latent = {"samples": torch.zeros(1, 4, 8, 16)}
    elif change == "cfg_one":
        other.cfg = 1.0
    elif change == "mask":
        other.latent = {"samples": torch.zeros(1, 4, 8, 8), "noise_mask": torch.ones(8, 8)}
    assert batch_key(base) is not None
    assert batch_key(other) != batch_key(base)
    assert batch_key(SamplerRun(**{**base.__dict__, "seed": 2, "cfg": 3.0})) == batch_key(base)


def test_a_member_that_never_reaches_the_node_lets_the_others_go():
    """A job that finishes (cached, failed, other graph) without parking does not leave the others waiting."""
    import threading

    cohort, seen, results = Cohort(3), [], {}

    def batch(items):
        seen.append(list(items))
        return [item * 10 for item in items]

    def member(name, parks):
        results[name] = cohort.run_member(lambda: cohort.join("k", parks, batch)[0] if parks else "skipped")

    threads = [threading.Thread(target=member, args=(n, p)) for n, p in (("a", 1), ("b", 0), ("c", 3))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert results == {"a": 10, "b": "skipped", "c": 30}
    assert seen == [[1, 3]] and cohort.batches == [2]

