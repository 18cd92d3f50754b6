"""torch.compile of the U-Net, in the background, under the CUDA graphs (issue 15's batch-4 item).

At batch 4 the GPU, not the host, is the limit, so the kernels themselves must get faster: inductor
fuses the pointwise work around the convolutions and matmuls (GroupNorm + SiLU, bias + residual adds,
the attention projections' reshapes) that eager PyTorch runs as separate kernels. Compiling takes tens
of seconds (minutes with autotuning), which a first image must not wait for, so:

    BackgroundCompiler.for_module(unet).request(key, fn, inputs)

compiles on a thread of its own by running the graphed call `fn` on copies of its inputs with the
compiled forward switched on for that thread only; jobs meanwhile run the plain (eager-kernel) CUDA
graphs. When a key is ready, GraphRunner.begin_run (between jobs) swaps it in: the graphs are dropped
and re-captured over the compiled kernels. Only input signatures compiled in the background ever go
through the compiled forward; any other shape runs the eager forward (and is queued for compiling), so
no job waits for dynamo. The inductor cache (FX graphs, autotuning) lives in TORCHINDUCTOR_CACHE_DIR,
by default ~/.cache/nodegraph/inductor, for later processes to reuse (how much that saves is not
measured yet).

Opt-in for now: NODEGRAPH_COMPILE=1 turns it on (`--no-compile` or NODEGRAPH_COMPILE=0 keep it off). On an
H100 (bench/results/vs_comfyui-...-d.md) it takes SD1.5 from 93 to 138 it/s at batch 1 and from 34 to 48 at
batch 4, and its GPU test (test_cuda_background_compile_...) passes; but the compile runs on a thread of the
jobs' interpreter and starves them while it lasts (77-90 s per signature with a cold cache): the first job
sampled at 1.6 it/s instead of 64, a batch-4 job beside the compile at 0.4 it/s instead of 31. It becomes the
default once the compile leaves the jobs' interpreter (a compile process filling the inductor cache). NODEGRAPH_COMPILE_MODE picks the mode (default "default":
measured on an H100, SD1.5 batch 8: 29.7 -> 19.7 ms per U-Net call, 71 s to compile;
"max-autotune-no-cudagraphs" autotunes longer; the CUDA graphs are always our own capture).

A capture must not overlap the compiling thread's GPU work (a capture forbids other threads' syncs and
allocations), so both take GPU_EXCLUSIVE: the compile waits for a capture; a capture that finds the
compile running is put off to a later call (the call runs eagerly). The compile starts once the graphed
calls have paused (IDLE_S), so it does not compete with the first job for the interpreter.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
import weakref
from pathlib import Path
from typing import Callable, Hashable, Sequence

import torch

log = logging.getLogger("nodegraph.compile")

ENV = "NODEGRAPH_COMPILE"
MODE_ENV = "NODEGRAPH_COMPILE_MODE"
DEFAULT_MODE = "default"

_override: bool | None = None
_graphed = threading.local()  # set while GraphRunner runs or captures a call: only there is compiled code used
GPU_EXCLUSIVE = threading.Lock()  # a CUDA-graph capture or a background compile, never both at once
IDLE_S = 0.5  # graphed calls paused this long: a job is over, the compile may start
MAX_DEFER_S = 20.0  # ... or this long after it was asked for, busy or not
_last_graphed_call = [0.0]


def set_enabled(on: bool | None) -> None:
    global _override
    _override = on


def enabled() -> bool:
    if _override is not None:
        return _override
    return os.environ.get(ENV, "0").strip().lower() in ("1", "true", "on", "yes")


class graphed_call:
    """Context of a GraphRunner call: the compiled forward may serve it (the eager path never uses it)."""

    def __enter__(self):
        self.before = getattr(_graphed, "on", False)
        _graphed.on = True
        _last_graphed_call[0] = time.monotonic()

    def __exit__(self, *exc):
        _graphed.on = self.before


def cache_dir() -> Path:
    """Where inductor keeps compiled graphs and autotuning results between processes."""
    path = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if not path:
        path = str(Path.home() / ".cache" / "nodegraph" / "inductor")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = path
    return Path(path)


def signature(args: tuple, kwargs: dict) -> Hashable:
    """What decides whether a forward call can use a compiled graph: shapes, dtypes, layout of the
    tensors and the argument structure (dynamo guards on these; anything else it would recompile for)."""
    def sig(v):
        if isinstance(v, torch.Tensor):
            return ("t", tuple(v.shape), v.dtype, v.is_contiguous(memory_format=torch.channels_last))
        if isinstance(v, (list, tuple)):
            return tuple(sig(x) for x in v)
        if isinstance(v, dict):
            return tuple((k, sig(v[k])) for k in sorted(v))
        return v if isinstance(v, (int, float, bool, str, type(None))) else type(v).__name__
    return sig(args), sig(kwargs)


class BackgroundCompiler:
    """The compiled forward of one module, filled in by a background thread (see the module docstring)."""

    _by_module: "weakref.WeakKeyDictionary[torch.nn.Module, BackgroundCompiler]" = weakref.WeakKeyDictionary()
    _lock = threading.Lock()

    def __init__(self, module: torch.nn.Module, mode: str) -> None:
        self.mode = mode
        self._module = weakref.ref(module)
        self._compiled = torch.compile(module._call_impl, mode=mode, dynamic=False, fullgraph=False)
        self._local = threading.local()
        self._ready: set[Hashable] = set()  # signatures compiled (usable by every thread)
        self._active: set[Hashable] = set()  # ... and swapped in (between jobs)
        self._requested: set[Hashable] = set()
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self.failed: dict[Hashable, str] = {}
        self.compile_seconds: dict[Hashable, float] = {}
        module._compiled_call_impl = self._dispatch  # nn.Module.__call__ goes through _dispatch

    @classmethod
    def for_module(cls, module: torch.nn.Module) -> "BackgroundCompiler":
        with cls._lock:
            compiler = cls._by_module.get(module)
            if compiler is None:
                cache_dir()
                compiler = cls._by_module[module] = cls(module, os.environ.get(MODE_ENV, DEFAULT_MODE))
            return compiler

    @classmethod
    def existing(cls, module: torch.nn.Module) -> "BackgroundCompiler | None":
        return cls._by_module.get(module)

    # --- the forward -------------------------------------------------------------------------------
    def _dispatch(self, *args, **kwargs):
        module = self._module()
        seen = getattr(self._local, "seen", None)
        if seen is not None:  # the compiling thread: compile, and note which signatures it compiled
            seen.add(signature(args, kwargs))
            return self._compiled(*args, **kwargs)
        if self._active and getattr(_graphed, "on", False) and enabled() and signature(args, kwargs) in self._active:
            return self._compiled(*args, **kwargs)
        return module._call_impl(*args, **kwargs)

    # --- background work ---------------------------------------------------------------------------
    def request(self, key: Hashable, fn: Callable[[Sequence[torch.Tensor]], object],
                inputs: Sequence[torch.Tensor]) -> None:
        """Compile for the forward calls that fn(inputs) makes (key names them), in the background."""
        if key in self._requested:
            return
        self._requested.add(key)
        copies = [t.detach().clone() for t in inputs]
        self._queue.put((key, fn, copies, torch.is_inference_mode_enabled(), time.monotonic()))
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="nodegraph-compile", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            key, fn, inputs, inference, asked = self._queue.get()
            while (time.monotonic() - _last_graphed_call[0] < IDLE_S
                   and time.monotonic() - asked < MAX_DEFER_S):
                time.sleep(0.05)
            t0 = time.perf_counter()
            self._local.seen = seen = set()
            try:
                with GPU_EXCLUSIVE:
                    stream = torch.cuda.Stream(inputs[0].device)
                    with torch.cuda.stream(stream), (torch.inference_mode() if inference else torch.no_grad()):
                        fn(inputs)  # compiles (and autotunes)
                        fn(inputs)  # a guard that failed here would recompile on a job: better here
                    stream.synchronize()
                self.compile_seconds[key] = time.perf_counter() - t0
                with self._lock:
                    self._ready.update(seen)
                log.info("torch.compile (%s) ready for %s in %.1f s", self.mode, key, self.compile_seconds[key])
            except Exception as exc:  # noqa: BLE001 - a model inductor cannot compile keeps its eager kernels
                self.failed[key] = f"{type(exc).__name__}: {exc}"
                log.warning("torch.compile failed, the eager kernels stay: %s", exc)
            finally:
                self._local.seen = None
                self._queue.task_done()

    # --- between jobs ------------------------------------------------------------------------------
    def swap_in(self) -> bool:
        """Make every compiled signature live; True when something new went live (graphs to re-capture)."""
        with self._lock:
            new = self._ready - self._active
            self._active |= new
        return bool(new)

    def wait(self, timeout: float | None = None) -> bool:
        """Until the queued compiles are done (tests, benchmarks); False if `timeout` s passed first."""
        end = None if timeout is None else time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if end is not None and time.monotonic() > end:
                return False
            time.sleep(0.1)
        return True
