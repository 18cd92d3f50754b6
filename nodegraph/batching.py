"""Cross-job batching: several jobs run together and meet at nodes that can run as one batch.

Why this shape: the engine knows nothing about diffusion, and a sampler only knows late (once its
model, latent and conditioning exist) whether another job's call can share its batch. So the jobs of a
cohort each run their own Executor.run in a thread, but only one thread runs at a time (a baton, the
cohort's lock), so the executor, cache and device manager see the same serial use as ever. A node
that can batch calls `ctx.batch(key, item, run_batch)`: it parks its item under `key` and hands the
baton on. When every job still running is parked, each key's items run as one `run_batch(items)`
(one call per key) and every job continues with its own result. A job that never reaches the node
(cached, failed, different graph) just finishes, which lets the others go on without it, so the
cohort cannot deadlock. Jobs whose keys differ are not merged: they run one after the other.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Hashable, Sequence

RunBatch = Callable[[Sequence[Any]], Sequence[Any]]  # items -> one result (or an Exception) per item


class _Parked:
    __slots__ = ("item", "run_batch", "member", "done", "result", "members")

    def __init__(self, item: Any, run_batch: RunBatch, member: Hashable) -> None:
        self.item, self.run_batch, self.member = item, run_batch, member
        self.done, self.result, self.members = False, None, [member]


class Cohort:
    """The meeting point of `size` jobs run by `run_member` in their own threads."""

    def __init__(self, size: int) -> None:
        self._baton = threading.Condition()
        self._active = size
        self._parked: dict[Hashable, list[_Parked]] = {}
        self.batches: list[int] = []  # the size of each batch run (tests, stats)

    def run_member(self, fn: Callable[[], Any]) -> Any:
        """Run one job (in the calling thread) holding the baton, except while it waits at a node."""
        with self._baton:
            try:
                return fn()
            finally:
                self._active -= 1
                self._release_if_all_parked()

    def join(self, key: Hashable, item: Any, run_batch: RunBatch, member: Hashable = None) -> tuple[Any, int, list]:
        """Park `item` under `key` until the batch runs; return this item's result (or raise its
        exception), the size of the batch it ran in and the `member` names (job ids) of its items.
        Called from a node, with the baton held."""
        parked = _Parked(item, run_batch, member)
        self._parked.setdefault(key, []).append(parked)
        self._release_if_all_parked()
        while not parked.done:
            self._baton.wait()
        if isinstance(parked.result, BaseException):
            raise parked.result
        return parked.result, len(parked.members), parked.members

    def _release_if_all_parked(self) -> None:
        if sum(len(group) for group in self._parked.values()) < self._active or not self._parked:
            return
        groups, self._parked = self._parked, {}
        for group in groups.values():
            self.batches.append(len(group))
            try:
                results = list(group[0].run_batch([p.item for p in group]))
                if len(results) != len(group):
                    raise RuntimeError(f"a batch of {len(group)} gave {len(results)} results")
            except Exception as exc:  # the whole batch failed: every member reports it
                results = [exc] * len(group)
            members = [p.member for p in group]
            for p, result in zip(group, results):
                p.result, p.members, p.done = result, members, True
        self._baton.notify_all()


def run_alone(item: Any, run_batch: RunBatch) -> Any:
    """What `ctx.batch` does outside a cohort: a batch of one."""
    result = run_batch([item])[0]
    if isinstance(result, BaseException):
        raise result
    return result
