"""Resident memory of a process that opens a large store and reads random samples.

Target (issue "Foundation"): a store of 100,000 synthetic samples, opened and read at random, keeps the
process's resident memory under 500 MB, because frames are memory-mapped and only the touched pages
are resident.

    .venv/bin/python benchmarks/store_memory.py --samples 100000 --reads 20000 [--store PATH]

The store is generated once (``skelssl.data.synthetic.write_store``) into ``--store`` (default a folder
under the system temp dir, kept for re-runs) and measured in a fresh child process, so the writer's
memory does not count.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def rss_mb() -> float:
    """Current resident set size of this process in MB (from /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(store_path: str, reads: int, seed: int) -> dict:
    import numpy as np

    from skelssl.data.dataset import SkeletonDataset
    from skelssl.data.store import Store

    base = rss_mb()
    t0 = time.perf_counter()
    store = Store(store_path)
    opened = rss_mb()
    ds = SkeletonDataset(store)
    rng = np.random.default_rng(seed)
    total = 0.0
    t1 = time.perf_counter()
    for i in rng.integers(0, len(store), size=reads):
        total += float(ds[int(i)]["x"][0, 0, 0, 0])
    t2 = time.perf_counter()
    return {
        "samples": len(store),
        "frames": int(store.info["frames"]),
        "store_gb": sum(f.stat().st_size for f in Path(store_path).iterdir()) / 1e9,
        "reads": reads,
        "rss_before_open_mb": round(base, 1),
        "rss_after_open_mb": round(opened, 1),
        "rss_after_reads_mb": round(rss_mb(), 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "open_seconds": round(t1 - t0, 3),
        "reads_per_second": round(reads / (t2 - t1), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--reads", type=int, default=20_000)
    ap.add_argument("--store", default=str(Path(tempfile.gettempdir()) / "skelssl_bench_store_100k"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure_only:
        print(json.dumps(measure(args.store, args.reads, args.seed)))
        return
    store = Path(args.store)
    if not (store / "store.json").is_file() or json.loads((store / "store.json").read_text())["samples"] != args.samples:
        from skelssl.data import synthetic

        t0 = time.perf_counter()
        synthetic.write_store(store, num_samples=args.samples, layout="ntu25", seed=args.seed)
        print(f"generated {args.samples} synthetic samples in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    out = subprocess.run(
        [sys.executable, __file__, "--measure-only", "--store", str(store), "--reads", str(args.reads)],
        check=True, capture_output=True, text=True,
    )
    result = json.loads(out.stdout)
    result["target_mb"] = 500
    result["pass"] = result["peak_rss_mb"] < 500
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
