"""Measuring training cost: timed steps, FLOP counts, peak memory, synthetic batches, naive variants.

The primitives shared by ``skelssl bench`` (:mod:`skelssl.jobs.bench`) and the benchmark scripts
(``benchmarks/train_throughput.py`` and its ``benchmarks/throughput_<method>.py`` plug-ins):

- :func:`time_steps`: seconds per call of a step closure, warm-up excluded, timed with
  :func:`time.perf_counter` between two CUDA synchronisations.
- :func:`count_flops`: the FLOPs of one call, counted by ``torch.utils.flop_counter.FlopCounterMode``.
- :func:`peak_tflops`: the chip's dense bf16 matrix peak (:data:`PEAK_BF16_TFLOPS`), for the share of
  peak a step achieves.
- :func:`synthetic_batch`: smooth zero-padded sequences of random lengths, NTU-like by default.
- :func:`naive_comparison`: a method's plug-in step, fast and naive variant, timed in one run.
"""

from __future__ import annotations

import importlib
import resource
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import torch

__all__ = [
    "PEAK_BF16_TFLOPS",
    "peak_tflops",
    "sync",
    "count_flops",
    "time_steps",
    "synthetic_batch",
    "reset_peak_memory",
    "peak_memory_mb",
    "host_peak_rss_mb",
    "device_name",
    "benchmarks_dir",
    "load_plugin",
    "naive_comparison",
]

# Dense (non-sparse) bf16 tensor-core peaks, TFLOP/s, from the vendors' data sheets.
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


def peak_tflops(device: torch.device) -> float | None:
    """The dense bf16 peak of ``device`` in TFLOP/s; ``None`` on CPU or for an unlisted GPU."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value
    return None


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(step: Callable[[], Any]) -> float | None:
    """FLOPs of one call of ``step``; ``None`` when the counter fails or counts nothing.

    Kernels the counter does not know (e.g. cuDNN's fused GRU) are left out: a lower bound.
    """
    try:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            step()
        flops = float(counter.get_total_flops())
    except Exception:  # an operator the counter cannot follow: report what is measurable
        return None
    return flops if flops > 0 else None


def time_steps(step: Callable[[], Any], device: torch.device, steps: int, warmup: int = 1) -> float:
    """Mean seconds per call of ``step`` over ``steps`` calls after ``warmup`` untimed ones."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    for _ in range(max(0, warmup)):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - t0) / steps


def synthetic_batch(n: int, device: torch.device | str = "cpu", seed: int = 0, min_length: int = 60, frames: int = 300,
                    joints: int = 25, persons: int = 2, channels: int = 3) -> dict[str, torch.Tensor]:
    """``n`` smooth sequences ``(n, channels, frames, joints, persons)``, zero-padded after their length.

    Lengths are uniform in ``[min_length, frames]``; each joint moves on a sine of its own frequency
    around a random rest position. The defaults are NTU's two persons, 25 joints and 300 frames.
    """
    g = torch.Generator().manual_seed(seed)
    t = frames
    lengths = torch.randint(min(min_length, t), t + 1, (n,), generator=g)
    base = torch.randn(n, channels, 1, joints, persons, generator=g)
    freq = torch.rand(n, channels, 1, joints, persons, generator=g) * 0.2
    time_axis = torch.arange(t, dtype=torch.float32).view(1, 1, t, 1, 1)
    x = base + 0.3 * torch.sin(freq * time_axis + base)
    x = x * (torch.arange(t)[None, :] < lengths[:, None])[:, None, :, None, None]
    return {"x": x.to(device), "lengths": lengths.to(device)}


def reset_peak_memory(device: torch.device) -> None:
    """Start a new GPU peak-memory window (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float | None:
    """``torch.cuda.max_memory_allocated`` since the last reset, in MiB; ``None`` on CPU."""
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def host_peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MiB (``getrusage``; Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def device_name(device: torch.device) -> str:
    """``NVIDIA H100 80GB HBM3`` or ``cpu (N thread(s))``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} thread(s))"


def benchmarks_dir() -> Path | None:
    """The ``benchmarks/`` folder of a source checkout (``None`` for an installed package)."""
    here = Path(__file__).resolve().parents[3] / "benchmarks"
    return here if (here / "train_throughput.py").is_file() else None


def load_plugin(method: str):
    """The module ``benchmarks/throughput_<method>.py``, or ``None`` when there is none."""
    folder = benchmarks_dir()
    if folder is None or not (folder / f"throughput_{method}.py").is_file():
        return None
    sys.path.insert(0, str(folder))  # plug-ins import each other (throughput_mamp uses the MT batch)
    try:
        return importlib.import_module(f"throughput_{method}")
    finally:
        sys.path.remove(str(folder))


def naive_comparison(method: str, device: torch.device, batch: int, steps: int, warmup: int = 1,
                     preset: str | None = None, frames: int | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """Fast and naive pre-training steps of a method's plug-in, timed one after the other.

    The plug-in's ``make_step(args, device, naive)`` builds both variants on the same fixed synthetic
    batch (the fast one under bf16 autocast on CUDA, the naive one in fp32, as its docstring says).

    Returns:
        ``(figures, None)`` with ``naive_samples_per_s``, ``naive_fast_samples_per_s``,
        ``naive_speedup`` (fast over naive), ``naive_batch`` and ``naive_preset``, or
        ``(None, reason)`` when the method has no naive variant.
    """
    plugin = load_plugin(method)
    if plugin is None:
        return None, f"no benchmarks/throughput_{method}.py (a naive variant exists only in a source checkout)"
    args = SimpleNamespace(batch=batch, frames=frames, preset=preset, steps=steps, warmup=warmup)
    rates = {}
    for naive in (False, True):
        step = plugin.make_step(args, device, naive=naive)
        rates[naive] = batch / time_steps(step, device, steps, warmup)
        del step
    figures = {"naive_samples_per_s": rates[True], "naive_fast_samples_per_s": rates[False],
               "naive_speedup": rates[False] / rates[True], "naive_batch": batch,
               "naive_preset": preset or (getattr(plugin, "PAPER_SIZE", None) or {}).get("preset", "paper")}
    return figures, None
