"""Pre-training throughput of a method: fast implementation and naive variant timed in one run.

    .venv/bin/python benchmarks/train_throughput.py --method hitrs [--batch 256] [--steps 5] [--device cuda]

Each method provides ``benchmarks/throughput_<method>.py`` with

    def make_step(args, device: torch.device, naive: bool) -> Callable[[], None]
        # returns a closure running ONE optimiser step (forward, backward, update) on a fixed
        # synthetic batch of ``args.batch`` sequences; ``naive=True`` is the official-code-style
        # variant (per-sample Python loops, fp32, unfused attention, CPU augmentation per sample).
        # An optional ``args.preset`` (None: the paper size) names the encoder preset; `skelssl bench
        # RECIPE --naive` passes the recipe's (skelssl.engine.throughput.naive_comparison).
    PAPER_SIZE: dict   # (optional) the model sizes the paper uses, for the record

The harness times both variants (warm-up steps excluded), counts the FLOPs of one fast step with
``torch.utils.flop_counter.FlopCounterMode`` and, on a GPU with a known peak, reports the share of the
chip's dense bf16 matrix peak. Print-out is one JSON object per variant plus the speed-up ratio.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
from pathlib import Path

import torch

# Timing, FLOP counting and the bf16 peak table are shared with `skelssl bench`.
from skelssl.engine.throughput import count_flops, peak_tflops, time_steps


def time_variant(make_step, args, device: torch.device, naive: bool) -> dict:
    step = make_step(args, device, naive=naive)
    seconds = time_steps(step, device, args.steps, args.warmup)
    out = {
        "variant": "naive" if naive else "fast",
        "batch": args.batch,
        "seconds_per_step": round(seconds, 4),
        "sequences_per_second": round(args.batch / seconds, 2),
    }
    if not naive:
        flops = count_flops(step)
        if flops:
            out["tflops_per_step"] = round(flops / 1e12, 4)
            out["achieved_tflops"] = round(flops / seconds / 1e12, 3)
            peak = peak_tflops(device)
            if peak:
                out["share_of_bf16_peak"] = round(flops / seconds / 1e12 / peak, 4)
    if device.type == "cuda":
        out["max_memory_gb"] = round(torch.cuda.max_memory_allocated(device) / 1e9, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="pre-training throughput, fast vs naive")
    ap.add_argument("--method", required=True)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--frames", type=int, default=None, help="sequence length (method default if unset)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--skip-naive", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).parent))
    module = importlib.import_module(f"throughput_{args.method}")
    device = torch.device(args.device)
    info = {
        "method": args.method,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "paper_size": getattr(module, "PAPER_SIZE", None),
    }
    print(json.dumps(info))
    fast = time_variant(module.make_step, args, device, naive=False)
    print(json.dumps(fast))
    if not args.skip_naive:
        naive = time_variant(module.make_step, args, device, naive=True)
        print(json.dumps(naive))
        print(json.dumps({"speedup_fast_over_naive": round(fast["sequences_per_second"] / naive["sequences_per_second"], 2)}))


if __name__ == "__main__":
    main()
