"""Which worker takes a job: the scheduler sends a job to a worker that already holds its model
files (`model_files_of`, read from the workflow's ModelFile inputs; every runner tracks them)."""
from __future__ import annotations

from ..workers.base import model_files_of

__all__ = ["model_files_of", "pick_worker"]


def pick_worker(idle: list, wanted: frozenset) -> object | None:
    """The idle worker holding most of `wanted` (all of it first); ties and no overlap: the one
    that has run the fewest jobs. Workers have `.models` (a set) and `.jobs_run`."""
    if not idle:
        return None
    return max(idle, key=lambda w: (len(wanted & w.models), -w.jobs_run, -w.index))
