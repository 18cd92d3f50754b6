"""One record per concept (issue 14): the API's Issue is the engine's, and JobOut is read off the queue's Job."""
from __future__ import annotations

import dataclasses

from nodegraph import validate
from nodegraph.queue import Job, JobStore
from nodegraph.server import models
from nodegraph.server.service import SubmitError


def test_the_api_issue_is_the_engines_issue():
    assert models.Issue is validate.Issue
    issue = validate.Issue("bad_value", "3 is above the maximum 2", "4", "KSampler", "steps")
    assert models.ErrorOut(detail="x", errors=[issue.to_json()]).model_dump()["errors"] == [
        {"kind": "bad_value", "message": "3 is above the maximum 2", "node": "4", "node_type": "KSampler",
         "input": "steps", "origin": None}]
    # a format error is the same record, with kind "format" and no node
    assert SubmitError("not a workflow", kind="format").errors() == [
        {"kind": "format", "message": "not a workflow", "node": None, "node_type": None, "input": None,
         "origin": None}]


def test_job_out_is_read_off_the_queue_record():
    public = set(models.JobOut.model_fields)
    assert public <= {f.name for f in dataclasses.fields(Job)}
    store = JobStore(":memory:")
    try:
        job = store.add("j1", {"version": 1, "nodes": {}}, extra={"secret": 1}, client_id="c")
        shown = models.JobOut.model_validate(job).model_dump()
    finally:
        store.close()
    assert set(shown) == public
    assert (shown["job_id"], shown["status"], shown["client_id"], shown["workflow"]) == (
        "j1", "pending", "c", {"version": 1, "nodes": {}})
    assert "extra" not in shown and "attempts" not in shown and "messages" not in shown
