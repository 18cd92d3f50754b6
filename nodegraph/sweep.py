"""Headless sweeps: `nodegraph run WF.json --sweep seed=1..64 --sweep "6.text=@prompts.txt"`.

A sweep names an input (NODE.INPUT, NODE an id or a title; or a bare INPUT, meaning every node
with that literal input) and its values: A..B (integers, inclusive), a comma list of JSON values
or plain strings, or @FILE (one value per non-empty line). The jobs are the Cartesian product, run
in order here or spread over a Ray cluster; the output folder gets the images and manifest.json
(job -> parameters -> files)."""
from __future__ import annotations

import copy
import itertools
import json
import re
import time
from pathlib import Path

from .workers.base import JobRequest

RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")
MAX_JOBS = 100_000


class SweepError(ValueError):
    pass


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_sweep(item: str, base_dir: Path = Path(".")) -> tuple[str, list]:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise SweepError(f"--sweep {item!r}: expected INPUT=VALUES or NODE.INPUT=VALUES")
    if raw.startswith("@"):
        path = base_dir / raw[1:]
        try:
            values = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except OSError as exc:
            raise SweepError(f"--sweep {item!r}: {path}: {exc.strerror or exc}") from None
    elif match := RANGE.match(raw):
        low, high = int(match[1]), int(match[2])
        if high < low:
            raise SweepError(f"--sweep {item!r}: the range {low}..{high} is empty")
        values = list(range(low, high + 1))
    else:
        values = [_value(part) for part in raw.split(",")]
    if not values:
        raise SweepError(f"--sweep {item!r}: no values")
    return key, values


def _targets(doc: dict, key: str) -> list[tuple[str, str]]:
    """(node id, input name) pairs that `key` names in the native document."""
    nodes = doc["nodes"]
    ref, dot, name = key.rpartition(".")
    if dot:
        ids = [nid for nid, n in nodes.items() if nid == ref or n.get("title") == ref]
        if len(ids) != 1:
            raise SweepError(f"--sweep {key}: {'no' if not ids else 'more than one'} node with id or title {ref!r}")
        value = nodes[ids[0]].get("inputs", {}).get(name)
        if isinstance(value, dict) and "node" in value:
            raise SweepError(f"--sweep {key}: input {name!r} of node {ids[0]} is a link, not a value")
        return [(ids[0], name)]
    found = [(nid, name) for nid, n in nodes.items()
             if name in n.get("inputs", {}) and not (isinstance(n["inputs"][name], dict) and "node" in n["inputs"][name])]
    if not found:
        raise SweepError(f"--sweep {key}: no node has a literal input {name!r} (name it as NODE.{name})")
    return found


def expand(doc: dict, sweeps: list[tuple[str, list]]) -> list[tuple[dict, dict]]:
    """[(parameters, workflow document)] for every combination of the sweeps' values."""
    targets = [(key, _targets(doc, key)) for key, _ in sweeps]
    total = 1
    for _, values in sweeps:
        total *= len(values)
    if total > MAX_JOBS:
        raise SweepError(f"the sweeps make {total:,} jobs, more than {MAX_JOBS:,}")
    jobs = []
    for combo in itertools.product(*(values for _, values in sweeps)):
        job = copy.deepcopy(doc)
        params = {}
        for (key, places), value in zip(targets, combo):
            params[key] = value
            for nid, name in places:
                job["nodes"][nid].setdefault("inputs", {})[name] = value
        jobs.append((params, job))
    return jobs


def output_files(outputs: dict) -> list[str]:
    """Paths (relative to their folder kind) of the images a job's outputs name."""
    files = []
    for ui in outputs.values():
        for image in (ui or {}).get("images", []) or []:
            if isinstance(image, dict) and image.get("filename"):
                files.append(str(Path(image.get("subfolder") or "") / image["filename"]))
    return files


def run_jobs(jobs: list[tuple[dict, dict]], backend, output_dir: Path, progress=None, source: str = "") -> dict:
    """Run every job on `backend` and write output_dir/manifest.json. A back end that queues jobs
    itself (Ray: `queues_jobs`) gets them all at once; another one job after the other.
    `progress(outcome)` is called as each finishes."""
    from concurrent.futures import as_completed

    started = time.perf_counter()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    requests = [(JobRequest(f"sweep-{stamp}-{k:05d}", doc), params) for k, (params, doc) in enumerate(jobs)]
    outcomes = {}
    if getattr(backend, "queues_jobs", False):
        futures = {backend.submit(request, _ignore): request.job_id for request, _ in requests}
        for future in as_completed(futures):
            outcomes[futures[future]] = future.result()
            if progress:
                progress(outcomes[futures[future]])
    else:
        for request, _ in requests:
            outcomes[request.job_id] = backend.submit(request, _ignore).result()
            if progress:
                progress(outcomes[request.job_id])
    entries = []
    for request, params in requests:
        outcome = outcomes[request.job_id]
        entries.append({"job": request.job_id, "parameters": params, "status": outcome.status,
                        "files": output_files(outcome.outputs), "seconds": round(outcome.run_seconds, 3),
                        **({"errors": outcome.errors} if outcome.errors else {})})
    manifest = {"workflow": source, "backend": getattr(backend, "kind", "?"), "jobs": entries,
                "seconds": round(time.perf_counter() - started, 3)}
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _ignore(event: str, data: dict, png) -> None:
    """Sweeps show one bar over the jobs, not each job's events."""
