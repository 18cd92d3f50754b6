"""The load test (bench/server_load.py) as a test: 50 websocket clients, 200 queued jobs, loopback only.

Nothing may be lost and every client must get exactly its own jobs' events, in order."""
from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_bench():
    spec = importlib.util.spec_from_file_location("server_load", ROOT / "bench" / "server_load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["server_load"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # 50 clients, 200 jobs
def test_fifty_clients_two_hundred_jobs_nothing_lost_nothing_crossed(server):
    bench = load_bench()
    report = asyncio.run(bench.run_load(server.url, clients=50, jobs=200, timeout=120))
    print(report.table())
    assert report.lost == [] and report.foreign == [] and report.failed == []
    assert len(report.job_ms) == 200 and len(report.delivery_ms) == 200 * 7
    assert server.state.store.counts() == {"success": 200}
