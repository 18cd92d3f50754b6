"""Content-addressed output cache, bounded in bytes with least-recently-used eviction.

A node's cache key is a hash of its type, version, literal inputs, fingerprint and the keys of
the nodes feeding it (see executor.cache_keys). Results of any workflow live side by side, so
switching between workflows A -> B -> A recomputes nothing that still fits. Model handles are
counted as zero bytes here: their memory is managed by the DeviceManager.
"""
from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

DEFAULT_CACHE_BYTES = 4 * 2**30


def value_bytes(value: Any, _depth: int = 0) -> int:
    """Approximate memory held by a node output (tensors counted by storage)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (str, bytes)):
        return len(value)
    if _depth > 6:
        return 64
    if isinstance(value, (list, tuple)):
        return 64 + sum(value_bytes(v, _depth + 1) for v in value)
    if isinstance(value, dict):
        return 64 + sum(value_bytes(v, _depth + 1) for v in value.values())
    if hasattr(value, "size") and hasattr(value, "mode") and hasattr(value, "tobytes"):  # PIL image
        w, h = value.size
        return w * h * len(value.getbands())
    if type(value).__name__ == "ModelHandle":
        return 0
    return sys.getsizeof(value) if isinstance(value, (int, float, bool, type(None))) else 64


class OutputCache:
    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[0]

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def put(self, key: str, value: Any, nbytes: int | None = None) -> None:
        size = value_bytes(value) if nbytes is None else nbytes
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.max_bytes:
                return  # larger than the whole cache: never stored
            self._entries[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._bytes -= evicted

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)
