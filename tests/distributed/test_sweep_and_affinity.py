"""Sweep expansion and worker choice without a cluster (fast): the parts of issue 16 that are plain logic."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from nodegraph.distributed.affinity import model_files_of, pick_worker
from nodegraph.sweep import SweepError, expand, parse_sweep

DOC = {"version": 1, "nodes": {
    "4": {"type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a.safetensors"}},
    "6": {"type": "CLIPTextEncode", "title": "Positive", "inputs": {"text": "x", "clip": {"node": "4", "output": "CLIP"}}},
    "3": {"type": "KSampler", "inputs": {"seed": 1, "model": {"node": "4", "output": "MODEL"}}}}}


def test_sweeps_expand_to_the_cartesian_product_in_order(tmp_path):
    (tmp_path / "p.txt").write_text("one\n\n two \n")
    sweeps = [parse_sweep("seed=1..3"), parse_sweep(f"Positive.text=@{tmp_path / 'p.txt'}")]
    jobs = expand(DOC, sweeps)
    assert [p for p, _ in jobs] == [{"seed": s, "Positive.text": t} for s in (1, 2, 3) for t in ("one", "two")]
    assert jobs[3][1]["nodes"]["3"]["inputs"]["seed"] == 2 and jobs[3][1]["nodes"]["6"]["inputs"]["text"] == "two"
    assert DOC["nodes"]["3"]["inputs"]["seed"] == 1  # the base document is untouched
    assert parse_sweep("3.cfg=5,6.5,x")[1] == [5, 6.5, "x"]


@pytest.mark.parametrize("item, message", [("seed", "expected INPUT=VALUES"), ("seed=5..1", "is empty"),
                                           ("9.seed=1..2", "no node with id or title '9'"),
                                           ("6.clip=1,2", "is a link"), ("steps=1..2", "no node has a literal input")])
def test_bad_sweeps_say_what_is_wrong(item, message):
    with pytest.raises(SweepError, match=message):
        expand(DOC, [parse_sweep(item)])


def test_model_files_come_from_model_file_inputs_and_pick_prefers_the_warm_worker(builtin_registry):
    wanted = model_files_of(DOC, builtin_registry)
    assert wanted == {("checkpoints", "a.safetensors")}
    cold = SimpleNamespace(index=0, models=set(), jobs_run=0)
    warm = SimpleNamespace(index=1, models={("checkpoints", "a.safetensors")}, jobs_run=5)
    assert pick_worker([cold, warm], wanted) is warm
    assert pick_worker([cold, warm], frozenset()) is cold  # no affinity: the least loaded
    assert pick_worker([], wanted) is None
