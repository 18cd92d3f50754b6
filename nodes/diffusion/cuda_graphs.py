"""CUDA graphs for the denoiser's network calls (U-Net, ControlNet).

An eager U-Net step launches about a thousand kernels; on a fast GPU the host cannot launch them as fast
as the GPU runs them, so the GPU idles. A CUDA graph records the launches of one call once and replays
them with one launch per step. A graph reads and writes fixed addresses, so each one owns static copies
of its inputs (the new step's values are copied in before a replay) and its output is copied out after.

    runner = GraphRunner.for_module(unet)     one per network, kept while the network lives
    runner.begin_run()                        once per sampling run: graphs of other weights are dropped
    out = runner(fn, key, tensors)            fn(tensors) -> tensor, replayed for the same key

When a call is graphed:
- a graph is made per key: the shapes, dtypes and devices of the tensors plus whatever else the caller
  puts in the key (the ControlNet set, SDXL size ids ...); the first call of a key runs eagerly (it warms
  the kernels up), the second captures, every later one replays, across steps, jobs and seeds;
- graphs are bound to the network's weights: a LoRA swapped in, a model moved or reloaded changes the
  weight addresses, and begin_run() then drops the graphs (weights patched in place need nothing: a
  graph reads the memory it was captured on);
- layout: on CUDA the U-Net's conv weights are channels_last (eager too, so switching graphs off and
  on re-captures nothing) and the graphed call's input is made channels_last (NHWC cuDNN kernels; the
  issue measured 10.7 against 12.3 ms of GPU time per SD1.5 CFG pair on an H100);
  NODEGRAPH_CHANNELS_LAST=0 keeps NCHW. The first (eager) call and the capture of a key run with cudnn.benchmark, so the
  captured convolutions are the fastest cuDNN found for those shapes (NODEGRAPH_CUDNN_BENCHMARK=0: off);
- ControlNets: a plain ControlNet chain over the whole schedule runs inside the same graphed call
  (controlnet.GraphedControl; its hints are graph inputs, its weights, strength and pooling in the key);
  step windows and T2I-Adapters keep their residuals eager, added as graph inputs;
- compiled kernels: once a graph exists, the U-Net's forward is compiled in the background
  (unet_compile.py) and swapped in between jobs, then re-captured (--no-compile keeps eager kernels);
- eager instead: on CPU/MPS, with gradients on, when turned off (`--no-cuda-graphs`, or
  NODEGRAPH_CUDA_GRAPHS=0), below MIN_FREE_BYTES of free GPU memory, after a capture failed for a key,
  and with more than MAX_GRAPHS keys per network (shapes that keep changing).
"""
from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Callable, Hashable, NamedTuple, Sequence

import torch

from . import unet_compile

log = logging.getLogger("nodegraph.cuda_graphs")

ENV = "NODEGRAPH_CUDA_GRAPHS"
MAX_GRAPHS = 8  # per network; each holds its activations (shared pool) and static inputs
MIN_FREE_BYTES = 1 << 30  # no new capture with less free GPU memory than this

_override: bool | None = None


def set_enabled(on: bool | None) -> None:
    """Turn CUDA graphs on or off for this process (None: back to the environment's setting)."""
    global _override
    _override = on


def enabled() -> bool:
    if _override is not None:
        return _override
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "off", "no")


def _switch(env: str) -> bool:
    return os.environ.get(env, "1").strip().lower() not in ("0", "false", "off", "no")


def channels_last() -> bool:
    return _switch("NODEGRAPH_CHANNELS_LAST")


def prepare_layout(module: torch.nn.Module, nhwc: bool) -> None:
    """Conv weights in channels_last (or back to NCHW); moves the weights, so graphs are re-captured."""
    if getattr(module, "_nodegraph_channels_last", False) != nhwc:
        module.to(memory_format=torch.channels_last if nhwc else torch.contiguous_format)
        module._nodegraph_channels_last = nhwc


class _CudnnBenchmark:
    """cudnn.benchmark on for the calls that pick the kernels a graph records, as it was afterwards."""

    def __enter__(self):
        self.before = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = self.before or _switch("NODEGRAPH_CUDNN_BENCHMARK")

    def __exit__(self, *exc):
        torch.backends.cudnn.benchmark = self.before


def weights_fingerprint(module: torch.nn.Module) -> tuple:
    """Where the module's weights live: a graph captured on other addresses would read stale memory."""
    return tuple((t.data_ptr(), t.dtype, tuple(t.shape)) for t in
                 [*module.parameters(), *module.buffers()])


def _clone(value):
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_clone(v) for v in value)
    return value


class _Graph:
    """One captured call: static inputs, the graph, its output."""

    def __init__(self, fn: Callable[[Sequence[torch.Tensor]], torch.Tensor], tensors: Sequence[torch.Tensor],
                 pool) -> None:
        self.inputs = [t.clone() for t in tensors]
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool, capture_error_mode="thread_local"):
            self.output = fn(self.inputs)

    def __call__(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        for static, value in zip(self.inputs, tensors):
            static.copy_(value)
        self.graph.replay()
        return _clone(self.output)  # the next replay overwrites self.output


class GraphRunner:
    """The graphs of one network (see the module docstring)."""

    _by_module: "weakref.WeakKeyDictionary[torch.nn.Module, GraphRunner]" = weakref.WeakKeyDictionary()
    _registry_lock = threading.Lock()

    def __init__(self, module: torch.nn.Module) -> None:
        self._module = weakref.ref(module)
        self._lock = threading.RLock()
        self._graphs: dict[Hashable, _Graph] = {}
        self._seen: set[Hashable] = set()
        self._failed: set[Hashable] = set()
        self._fingerprint: tuple | None = None
        self._pool = None
        self._compile_on = unet_compile.enabled()
        self.captures = 0  # graphs captured (tests, benchmarks)
        self.replays = 0

    @classmethod
    def for_module(cls, module: torch.nn.Module) -> "GraphRunner":
        with cls._registry_lock:
            runner = cls._by_module.get(module)
            if runner is None:
                runner = cls._by_module[module] = cls(module)
            return runner

    def begin_run(self) -> None:
        """Before a sampling run: drop every graph if the weights moved since they were captured."""
        module = self._module()
        if module is None or not enabled():
            return
        fingerprint = weights_fingerprint(module)
        compiler = unet_compile.BackgroundCompiler.existing(module)
        swapped = compiler is not None and unet_compile.enabled() and compiler.swap_in()  # compiled kernels ready
        with self._lock:
            if fingerprint != self._fingerprint or swapped or self._compile_on != unet_compile.enabled():
                self.clear()  # re-captured over the (newly) compiled or eager kernels
                self._fingerprint = fingerprint
                self._compile_on = unet_compile.enabled()

    def clear(self) -> None:
        with self._lock:
            self._graphs.clear()
            self._seen.clear()
            self._failed.clear()
            self._pool = None

    def usable(self, tensors: Sequence[torch.Tensor]) -> bool:
        return (enabled() and self._fingerprint is not None and not torch.is_grad_enabled()
                and bool(tensors) and all(t.is_cuda for t in tensors))

    def __call__(self, fn: Callable[[Sequence[torch.Tensor]], object], key: Hashable,
                 tensors: Sequence[torch.Tensor], compilable: bool = False) -> torch.Tensor:
        """fn(tensors), replayed for the same key; compilable: the module's forward in fn may be
        compiled in the background (unet_compile.py) once its graph exists."""
        if not self.usable(tensors):
            return fn(tensors)
        full_key = (key, tuple((t.shape, t.dtype, t.device, t.stride()) for t in tensors))
        with self._lock, unet_compile.graphed_call():
            graph = self._graphs.get(full_key)
            if graph is None:
                with _CudnnBenchmark():
                    graph = self._maybe_capture(fn, full_key, tensors)
                    if graph is None:
                        return fn(tensors)
                module = self._module()
                if compilable and unet_compile.enabled() and module is not None:
                    unet_compile.BackgroundCompiler.for_module(module).request(full_key, fn, tensors)
            self.replays += 1
            return graph(tensors)

    def _maybe_capture(self, fn, full_key, tensors) -> _Graph | None:
        if full_key in self._failed or len(self._graphs) >= MAX_GRAPHS:
            return None
        if full_key not in self._seen:  # first sight: eager, which also warms up cuBLAS / cuDNN
            if len(self._seen) < 4 * MAX_GRAPHS:
                self._seen.add(full_key)
            return None
        free, _total = torch.cuda.mem_get_info(tensors[0].device)
        if free + torch.cuda.memory_reserved(tensors[0].device) - torch.cuda.memory_allocated(tensors[0].device) \
                < MIN_FREE_BYTES:
            return None
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        if not unet_compile.GPU_EXCLUSIVE.acquire(blocking=False):
            return None  # a background compile is using the GPU: capture at a later call, eager till then
        try:
            graph = _Graph(fn, tensors, self._pool)
        except Exception as exc:  # an op that cannot be captured: this key stays eager
            self._failed.add(full_key)
            log.warning("CUDA graph capture failed, running eagerly: %s", exc)
            return None
        finally:
            unet_compile.GPU_EXCLUSIVE.release()
        self._graphs[full_key] = graph
        self.captures += 1
        return graph


def flatten_inputs(values: dict) -> tuple[tuple, list[torch.Tensor]] | None:
    """A model call's keyword inputs as (structure key, tensors); None if some value cannot be part of a
    graph key (then the call runs eagerly)."""
    structure, tensors = [], []
    for name in sorted(values):
        value = values[name]
        if value is None:
            structure.append((name, None))
        elif isinstance(value, torch.Tensor):
            structure.append((name, "t"))
            tensors.append(value)
        elif isinstance(value, (list, tuple)) and all(isinstance(v, torch.Tensor) for v in value):
            structure.append((name, "l", len(value)))
            tensors.extend(value)
        else:
            try:
                hash(value)
            except TypeError:
                return None
            structure.append((name, "v", value))
    return tuple(structure), tensors


def rebuild_inputs(structure: tuple, tensors: Sequence[torch.Tensor]) -> dict:
    """flatten_inputs undone, on (static) tensors."""
    out, i = {}, 0
    for item in structure:
        name, kind = item[0], item[1]
        if kind is None:
            out[name] = None
        elif kind == "t":
            out[name] = tensors[i]
            i += 1
        elif kind == "l":
            out[name] = list(tensors[i:i + item[2]])
            i += item[2]
        else:
            out[name] = item[2]
    return out


def runner_for(module) -> GraphRunner | None:
    """The runner of a network on a CUDA device, checked against its current weights; None elsewhere."""
    if not isinstance(module, torch.nn.Module):
        return None
    first = next(iter(module.parameters()), None)
    if first is None or not first.is_cuda:
        return None
    prepare_layout(module, channels_last())  # eager too: one layout per process, no re-capture on a switch
    if not enabled():
        return None
    runner = GraphRunner.for_module(module)
    runner.begin_run()
    return runner


class ControlCall(NamedTuple):
    """ControlNet residuals computed inside the graphed call (controlnet.GraphedControl): `key` names
    what the captured graph bakes in, `hints` are graph inputs, `residuals(hints, xc, timestep, conds,
    out_dtype)` gives the U-Net's extra residuals."""
    key: Hashable
    hints: list
    residuals: Callable[..., dict]


def graphed_apply(runner: GraphRunner | None, model, x: torch.Tensor, timestep: torch.Tensor,
                  context: torch.Tensor, extras: dict, has_patches: bool,
                  control: ControlCall | None = None) -> torch.Tensor:
    """model.apply(x, timestep, context, extras) through the runner's graphs when it can be, with
    `control`'s residuals added to extras (inside the same graph).
    U-Net patches (transformer_options with patches) run Python inside the forward: always eager."""
    def eager() -> torch.Tensor:
        kw = extras
        if control is not None:
            kw = {**extras, **control.residuals(control.hints, x, timestep, {**extras, "context": context}, x.dtype)}
        return model.apply(x, timestep, context, kw)

    if runner is None or has_patches:
        return eager()
    graph_extras = {k: v for k, v in extras.items() if k != "transformer_options"}
    flat = flatten_inputs({**graph_extras, "~x": x, "~timestep": timestep, "~context": context,
                           "~hints": None if control is None else list(control.hints)})
    if flat is None:
        return eager()
    structure, tensors = flat

    nhwc = bool(getattr(runner._module(), "_nodegraph_channels_last", False))

    def call(static: Sequence[torch.Tensor]) -> torch.Tensor:
        kw = rebuild_inputs(structure, static)
        x_in, t_in, ctx_in, hints = kw.pop("~x"), kw.pop("~timestep"), kw.pop("~context"), kw.pop("~hints")
        if control is not None:
            kw.update(control.residuals(hints, x_in, t_in, {**kw, "context": ctx_in}, x_in.dtype))
        if nhwc:
            x_in = x_in.contiguous(memory_format=torch.channels_last)
        out = model.apply(x_in, t_in, ctx_in, kw)
        return out.contiguous() if nhwc else out  # the sampler's math stays NCHW

    return runner(call, ("apply", structure, None if control is None else control.key), tensors,
                  compilable=control is None)
