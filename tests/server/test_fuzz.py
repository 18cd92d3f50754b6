"""Fuzz every documented route (native and ComfyUI) with schemathesis, from the served OpenAPI
schema, with valid-looking (positive) and invalid (negative) data: no request may produce a 5xx,
and the server must still answer afterwards.

schemathesis' pytest plugin does not work with this pytest, so the test drives its Hypothesis
strategies directly, one operation at a time."""
from __future__ import annotations

import time

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.server.conftest import ServerThread, make_env
from tests.server.helpers import picture_workflow

EXAMPLES = 12  # per operation and mode: a few hundred requests in the normal suite
LONG_EXAMPLES = 150  # the long run, in the slow set


@pytest.fixture
def fuzz_server(tmp_path, builtin_registry):
    env = make_env(tmp_path / "base", builtin_registry)
    with ServerThread(env, tmp_path / "data", ui_dir=tmp_path / "no-ui") as server:
        with server.client() as http:  # something to find: a finished job with a saved image
            job = http.post("/v1/jobs", json={"workflow": picture_workflow(steps=1, size=4)}).json()["job_id"]
            deadline = time.monotonic() + 20
            while http.get(f"/v1/jobs/{job}").json()["status"] != "success" and time.monotonic() < deadline:
                time.sleep(0.05)
        yield server


def test_fuzz_every_route_no_server_errors(fuzz_server):
    fuzz(fuzz_server, EXAMPLES)


@pytest.mark.slow
def test_fuzz_every_route_long(fuzz_server):
    fuzz(fuzz_server, LONG_EXAMPLES)


def fuzz(fuzz_server, examples: int) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    failures: list[str] = []
    operations = 0
    requests = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)

            @given(case=strategy)
            @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            def run(case):
                nonlocal requests
                requests += 1
                response = case.call(base_url=fuzz_server.url, timeout=30)
                if response.status_code >= 500:
                    failures.append(f"{operation.label} [{mode.value}] -> {response.status_code}: "
                                    f"{response.text[:200]} (path {case.formatted_path}, query {case.query}, "
                                    f"body {str(case.body)[:200]})")

            try:
                run()
            except Exception as exc:  # generation problems are reported, not fatal for the others
                if "Unsatisfiable" not in type(exc).__name__:
                    failures.append(f"{operation.label} [{mode.value}]: {type(exc).__name__}: {exc}")
    print(f"fuzzed {operations} operations with {requests} requests")
    assert operations >= 40
    assert failures == []
    assert httpx.get(f"{fuzz_server.url}/v1/status").json()["worker_alive"] is True
    assert fuzz_server.thread.is_alive()
