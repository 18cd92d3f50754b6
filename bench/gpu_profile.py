"""Where the GPU time of SD1.5 at batch 4 goes, and which variants shorten it (issue 15's batch-4 and VAE
items). Full-size random SD1.5 VAE and U-Net, built on the GPU.

    python bench/gpu_profile.py vae            VAE decode of 4 latents 64x64: dtype / layout / cuDNN
                                               benchmark / SDPA variants, ms and PSNR vs the fp32 decode,
                                               and the top kernels of the current path
    python bench/gpu_profile.py unet [--compile MODE ...] [--batch 8]
                                               one U-Net call of `batch` images (batch 4 with CFG = 8), fp16
                                               channels_last, replayed as a CUDA graph: eager modules,
                                               SDPA backends, and torch.compile(mode) (compile seconds)

Times are medians of CUDA-event-timed graph replays (or calls) after warm-up.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nodes.diffusion.checkpoint.layout import reference_config  # noqa: E402
from nodes.diffusion.checkpoint.modules import build_unet, build_vae  # noqa: E402


def materialise(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    module.to_empty(device="cuda")
    for m in module.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return module.eval()


def timed(fn, reps: int = 20, warm: int = 3) -> float:
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def graphed(fn):
    """fn() captured once (after warm-up on a side stream) and returned as a replay."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    return graph.replay, out


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.float() - b.float()) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(4.0 / mse)  # images in -1..1: peak-to-peak 2


def vae(args) -> None:
    model = materialise(build_vae(reference_config("sd15_vae")))
    torch.manual_seed(1)
    latent = torch.randn(4, 4, 64, 64, device="cuda")
    with torch.no_grad():
        ref = model.decode(latent).sample.float()
    print(f"fp32 decode b4: {timed(lambda: model.decode(latent), reps=5):.1f} ms")

    def variant(name, dtype, nhwc, bench, backend=None, graph=False, compile_mode=None):
        torch.backends.cudnn.benchmark = bench
        m = model.to(dtype=dtype, memory_format=torch.channels_last if nhwc else torch.contiguous_format)
        x = latent.to(dtype)
        if nhwc:
            x = x.contiguous(memory_format=torch.channels_last)
        dec = m.decode
        if compile_mode:
            t0 = time.perf_counter()
            dec = torch.compile(m.decode, mode=compile_mode)
            with torch.no_grad():
                dec(x)
            print(f"  compile {compile_mode}: {time.perf_counter() - t0:.1f} s")

        def call():
            if backend is None:
                return dec(x).sample
            from torch.nn.attention import sdpa_kernel
            with sdpa_kernel(backend):
                return dec(x).sample

        with torch.no_grad():
            out = call()
            fn = call
            if graph:
                fn, out = graphed(call)
            ms = timed(fn)
            to_cpu = timed(lambda: ((out.float() + 1) / 2).clamp(0, 1).movedim(1, -1).cpu(), reps=5)
            to_cpu_b = timed(lambda: out.movedim(1, -1).cpu(), reps=5)
        print(f"{name:>46}: {ms:6.1f} ms   PSNR vs fp32 {psnr(out, ref):5.1f} dB   "
              f"+ to CPU f32 {to_cpu:4.1f} ms / {dtype} {to_cpu_b:4.1f} ms", flush=True)
        return ms

    from torch.nn.attention import SDPBackend
    variant("bf16 NCHW (current, no cudnn benchmark)", torch.bfloat16, False, False)
    variant("bf16 NCHW cudnn.benchmark", torch.bfloat16, False, True)
    variant("bf16 channels_last cudnn.benchmark", torch.bfloat16, True, True)
    variant("bf16 channels_last bench, efficient SDPA", torch.bfloat16, True, True, SDPBackend.EFFICIENT_ATTENTION)
    variant("bf16 channels_last bench, math SDPA", torch.bfloat16, True, True, SDPBackend.MATH)
    variant("bf16 channels_last bench, CUDA graph", torch.bfloat16, True, True, graph=True)
    variant("fp16 channels_last bench (not SD-VAE-safe)", torch.float16, True, True)
    if args.compile:
        for mode in args.compile:
            variant(f"bf16 channels_last compile {mode}", torch.bfloat16, True, True, compile_mode=mode)
    # the current path's top kernels
    torch.backends.cudnn.benchmark = False
    m = model.to(dtype=torch.bfloat16, memory_format=torch.contiguous_format)
    x = latent.to(torch.bfloat16)
    with torch.no_grad():
        m.decode(x)
        torch.cuda.synchronize()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            m.decode(x)
            torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=14, max_name_column_width=70))


def unet(args) -> None:
    config = reference_config("sd15_unet")
    model = materialise(build_unet(config)).to(torch.float16, memory_format=torch.channels_last)
    torch.backends.cudnn.benchmark = True
    b = args.batch
    torch.manual_seed(2)
    x = torch.randn(b, 4, 64, 64, device="cuda", dtype=torch.float16).contiguous(memory_format=torch.channels_last)
    t = torch.full((b,), 500.0, device="cuda")
    ctx = torch.randn(b, 77, 768, device="cuda", dtype=torch.float16)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def run(fwd, backend=None):
        def call():
            if backend is None:
                return fwd(x, t, encoder_hidden_states=ctx, return_dict=False)[0]
            with sdpa_kernel(backend):
                return fwd(x, t, encoder_hidden_states=ctx, return_dict=False)[0]
        return call

    with torch.no_grad():
        ref = run(model)().float()
        rows = []
        for name, backend in (("default SDPA", None), ("flash", SDPBackend.FLASH_ATTENTION),
                              ("cuDNN attention", SDPBackend.CUDNN_ATTENTION),
                              ("efficient", SDPBackend.EFFICIENT_ATTENTION)):
            try:
                replay, out = graphed(run(model, backend))
                rows.append((f"eager modules, {name}, CUDA graph", timed(replay), psnr(out, ref)))
            except Exception as exc:  # a backend that does not take these shapes
                rows.append((f"eager modules, {name}: {type(exc).__name__}", float("nan"), float("nan")))
            print(rows[-1], flush=True)
        for mode in args.compile or []:
            t0 = time.perf_counter()
            compiled = torch.compile(model, mode=mode, dynamic=False)
            run(compiled)()
            secs = time.perf_counter() - t0
            replay, out = graphed(run(compiled))
            rows.append((f"torch.compile {mode} ({secs:.0f} s compile), CUDA graph", timed(replay), psnr(out, ref)))
            print(rows[-1], flush=True)
    print(f"\nSD1.5 U-Net, {b} images 64x64, fp16 channels_last, {torch.cuda.get_device_name()}, torch {torch.__version__}")
    for name, ms, p in rows:
        print(f"{name:>70}: {ms:6.2f} ms per call   PSNR vs eager {p:5.1f} dB")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["vae", "unet"])
    p.add_argument("--compile", nargs="*", default=None, help="torch.compile modes to try")
    p.add_argument("--batch", type=int, default=8)
    args = p.parse_args()
    vae(args) if args.what == "vae" else unet(args)


if __name__ == "__main__":
    main()
