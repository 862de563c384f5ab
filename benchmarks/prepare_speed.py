"""How fast ``skelssl`` reads NTU ``.skeleton`` files, against a line-by-line reader, in one run.

Times, on synthetic NTU-format files and on the real sample files in ``../shared/data``:

- ``line-by-line``: the reader most research code bases carry, copied from the official NTU
  ``ntu_gendata.py`` (``read_skeleton`` + ``read_xyz``: ``readline``, ``split``, ``float()`` per value);
- ``skelssl read``: :func:`skelssl.data.formats.ntu.read` as installed (its compiled one-pass reader
  where numba, the ``[fast]`` extra, is installed, else the numpy reader);
- ``skelssl read+agcn``: the same followed by the ``agcn`` preprocessing pipeline (when importable);
- ``skelssl read numpy``: the numpy reader alone (``parser="numpy"``), what a core install without
  numba runs (when the reader has that option); ``SKELSSL_NUMBA=0`` in the environment times the
  whole core install (reader and ``agcn`` without their compiled loops);

in one worker process and in ``--workers`` processes (``multiprocessing``, fresh ``spawn`` workers), as
files/s and MB/s, with the speed-up over the line-by-line reader timed in the same workers. The readers
take turns on slices of the files, so that all of them see the same load on a shared machine. BLAS
threads are pinned to 1, so that one process is one core. Page faults per file are reported for the
one-process rows (the vectorised reader is sensitive to them on some virtual machines).

Synthetic files come from ``skelssl.data.synthetic.write_ntu_skeleton_files`` when it is available,
otherwise from random-walk skeletons written here with ``write_skeleton_file`` (60-300 frames, a second
body in about a third of them, half CRLF). They go to a temporary folder (``--workdir`` to choose)
that is deleted afterwards (``--keep`` to keep it).

Usage::

    python benchmarks/prepare_speed.py                 # 5,000 files, every core
    python benchmarks/prepare_speed.py --files 1000 --workers 2
    SKELSSL_NUMBA=0 python benchmarks/prepare_speed.py   # as installed without the [fast] extra
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import multiprocessing as mp  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from skelssl.data.formats import ntu  # noqa: E402

try:
    from skelssl.data.preprocess import apply_pipeline
except ImportError:  # pipelines not there yet: time the reader alone
    apply_pipeline = None

REAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "ntu_rgbd_samples"


# -- the line-by-line reader (official NTU ntu_gendata.py, read_skeleton + read_xyz) ----------------
def read_skeleton(file):
    with open(file, "r") as f:
        skeleton_sequence = {}
        skeleton_sequence["numFrame"] = int(f.readline())
        skeleton_sequence["frameInfo"] = []
        for t in range(skeleton_sequence["numFrame"]):
            frame_info = {}
            frame_info["numBody"] = int(f.readline())
            frame_info["bodyInfo"] = []
            for m in range(frame_info["numBody"]):
                body_info_key = [
                    "bodyID", "clipedEdges", "handLeftConfidence", "handLeftState", "handRightConfidence",
                    "handRightState", "isResticted", "leanX", "leanY", "trackingState",
                ]
                body_info = {k: float(v) for k, v in zip(body_info_key, f.readline().split())}
                body_info["numJoint"] = int(f.readline())
                body_info["jointInfo"] = []
                for v in range(body_info["numJoint"]):
                    joint_info_key = [
                        "x", "y", "z", "depthX", "depthY", "colorX", "colorY", "orientationW",
                        "orientationX", "orientationY", "orientationZ", "trackingState",
                    ]
                    joint_info = {k: float(v) for k, v in zip(joint_info_key, f.readline().split())}
                    body_info["jointInfo"].append(joint_info)
                frame_info["bodyInfo"].append(body_info)
            skeleton_sequence["frameInfo"].append(frame_info)
    return skeleton_sequence


def read_xyz(file, max_body=4, num_joint=25):
    seq_info = read_skeleton(file)
    data = np.zeros((max_body, seq_info["numFrame"], num_joint, 3))
    for n, f in enumerate(seq_info["frameInfo"]):
        for m, b in enumerate(f["bodyInfo"]):
            for j, v in enumerate(b["jointInfo"]):
                if m < max_body and j < num_joint:
                    data[m, n, j, :] = [v["x"], v["y"], v["z"]]
    return data


# -- the timed tasks (module level, so that worker processes can run them) --------------------------
def task_line_by_line(path: str) -> int:
    return read_xyz(path).shape[1]


def task_read(path: str) -> int:
    return ntu.read(path)[0].num_frames


def task_read_agcn(path: str) -> int:
    return apply_pipeline("agcn", ntu.read(path)[0], "ntu25", num_persons=2).num_frames


def task_read_numpy(path: str) -> int:
    return ntu.read(path, parser="numpy")[0].num_frames


TASKS: dict[str, Callable[[str], int]] = {"line-by-line": task_line_by_line, "skelssl read": task_read}
if apply_pipeline is not None:
    TASKS["skelssl read+agcn"] = task_read_agcn
if "numpy" in getattr(ntu, "PARSERS", ()):
    TASKS["skelssl read numpy"] = task_read_numpy


def reader_in_use() -> str:
    """Which reader ``ntu.read`` runs by default in this environment."""
    compiled = getattr(ntu, "_compiled_scan", lambda: None)()
    return "compiled (numba)" if compiled is not None else "numpy"


def _run_one(job: tuple[str, str]) -> int:
    name, path = job
    return TASKS[name](path)


def _timed_chunk(name: str, files: list[str]) -> tuple[float, float]:
    """In a worker: seconds to run reader ``name`` on ``files``, and page faults per file."""
    task = TASKS[name]
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    for f in files:
        task(f)
    seconds = time.perf_counter() - t0
    return seconds, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0) / len(files)


def time_readers(files: list[str], baseline_files: int, workers: int, rounds: int) -> dict:
    """Time every reader on ``files`` in fresh worker processes, interleaved in ``rounds``.

    The readers take turns on successive slices of the files, so that all of them see the same load
    on a shared machine. The line-by-line reader reads only the first ``baseline_files`` files.

    Returns:
        ``{reader: (seconds, files read, faults per file or None)}``.
    """
    totals = {name: [0.0, 0, 0.0] for name in TASKS}
    with mp.get_context("spawn").Pool(workers) as pool:
        pool.map(_run_one, [(name, files[0]) for name in TASKS for _ in range(workers)])  # imports, warm-up
        for r, part in enumerate(np.array_split(np.arange(len(files)), rounds)):
            names = list(TASKS)
            for name in names[r % len(names):] + names[:r % len(names)]:
                chunk = [files[i] for i in part if name != "line-by-line" or i < baseline_files]
                if not chunk:
                    continue
                if workers == 1:
                    seconds, faults = pool.apply(_timed_chunk, (name, chunk))
                else:
                    t0 = time.perf_counter()
                    pool.map(_run_one, [(name, f) for f in chunk], chunksize=max(1, len(chunk) // (4 * workers)))
                    seconds, faults = time.perf_counter() - t0, 0.0
                totals[name][0] += seconds
                totals[name][1] += len(chunk)
                totals[name][2] += faults * len(chunk)
    return {name: (sec, n, fl / n if workers == 1 else None) for name, (sec, n, fl) in totals.items() if n}


# -- synthetic files -------------------------------------------------------------------------------
def _random_walk_file(args: tuple[str, int, int]) -> str:
    """One random-walk NTU file: 60-300 frames, a second body in about a third of the files."""
    out_dir, index, seed = args
    rng = np.random.default_rng([seed, index])
    frames = int(rng.integers(60, 301))
    slots = 2 if rng.random() < 1 / 3 else 1
    base = rng.normal(0, 0.25, size=(1, slots, 25, 3)) + np.array([0.0, 0.2, 3.2])
    base[:, 1:, :, 0] += 0.8
    bodies = (base + np.cumsum(rng.normal(0, 0.005, size=(frames, slots, 25, 3)), axis=0)).astype(np.float32)
    if slots == 2:  # the second person enters late / leaves early
        a, b = sorted(rng.integers(0, frames, size=2))
        bodies[:a, 1] = 0
        bodies[b + 1:, 1] = 0
    name = (f"S{1 + index % 32:03d}C{1 + index // 32 % 3:03d}P{1 + index // 96 % 106:03d}"
            f"R{1 + index // 10176 % 2:03d}A{1 + int(rng.integers(0, 120)):03d}.skeleton")
    path = Path(out_dir) / f"{index // 1000:03d}" / name  # a few subfolders, as unzipped releases have
    return str(ntu.write_skeleton_file(path, bodies, crlf=bool(rng.random() < 0.5)))


def make_files(out_dir: Path, num_files: int, workers: int, seed: int = 0) -> tuple[list[str], str]:
    """Write the synthetic files; returns their paths and which generator wrote them."""
    try:
        from skelssl.data.synthetic import write_ntu_skeleton_files
    except ImportError:
        write_ntu_skeleton_files = None
    if write_ntu_skeleton_files is not None:
        paths = write_ntu_skeleton_files(out_dir, num_files, seed=seed, crlf_fraction=0.5)
        return sorted(str(p) for p in paths), "skelssl.data.synthetic.write_ntu_skeleton_files"
    jobs = [(str(out_dir), i, seed) for i in range(num_files)]
    with mp.get_context("fork" if hasattr(os, "fork") else "spawn").Pool(workers) as pool:
        paths = pool.map(_random_walk_file, jobs, chunksize=16)
    return sorted(paths), "random-walk skeletons written by this benchmark (write_skeleton_file)"


# -- runs and report -------------------------------------------------------------------------------
def check_same_values(files: list[str]) -> None:
    """The readers must agree before their speeds are compared."""
    parsers = ["numpy", "auto"] if "numpy" in getattr(ntu, "PARSERS", ()) else [None]
    for f in files:
        for parser in parsers:
            ours = (ntu.read(f, parser=parser) if parser else ntu.read(f))[0].bodies  # (T, B, 25, 3)
            ref = read_xyz(f)[: ours.shape[1]].transpose(1, 0, 2, 3).astype(np.float32)
            if not np.array_equal(ours, ref):
                raise SystemExit(f"readers disagree on {f} (parser {parser})")


def run_set(label: str, files: list[str], worker_counts: list[int], baseline_files: int) -> list[dict]:
    """Rows for one file set: every reader, in one process and in all."""
    sizes = {f: os.path.getsize(f) for f in set(files)}
    rounds = max(1, min(20, len(files) // 9))
    rows = []
    for workers in worker_counts:
        timed = time_readers(files, baseline_files, workers, rounds)
        base_seconds, base_files, _ = timed["line-by-line"]
        for name, (seconds, count, faults) in timed.items():
            todo = files[:baseline_files] if name == "line-by-line" else files
            rows.append(dict(
                set=label, reader=name, procs=workers, files=count, files_s=count / seconds,
                mb_s=sum(sizes[f] for f in todo) / 1e6 / seconds,
                speedup=(base_seconds / base_files) / (seconds / count), faults=faults,
            ))
    return rows


def print_table(rows: list[dict]) -> None:
    head = (f"{'set':<10} {'reader':<19} {'procs':>5} {'files':>6} {'files/s':>9} {'MB/s':>8} "
            f"{'speed-up':>9} {'faults/file':>12}")
    print(head)
    print("-" * len(head))
    for r in rows:
        faults = f"{r['faults']:12.0f}" if r["faults"] is not None else f"{'-':>12}"
        print(f"{r['set']:<10} {r['reader']:<19} {r['procs']:>5} {r['files']:>6} {r['files_s']:>9.1f} "
              f"{r['mb_s']:>8.2f} {r['speedup']:>8.1f}x {faults}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=5000, help="synthetic files to write and read")
    ap.add_argument("--workdir", type=Path, default=None, help="where to write them (default: a temp folder)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for the all-cores rows")
    ap.add_argument("--baseline-files", type=int, default=None,
                    help="time the slow line-by-line reader on only the first N files (default: all)")
    ap.add_argument("--real", type=Path, default=REAL_DIR, help="folder of real .skeleton files")
    ap.add_argument("--real-repeat", type=int, default=20, help="passes over the (few) real files per row")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the synthetic files")
    args = ap.parse_args(argv)

    worker_counts = sorted({1, max(1, args.workers)})
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="skelssl_ntu_bench_", dir=args.workdir))
    try:
        t0 = time.perf_counter()
        files, origin = make_files(root / "ntu", args.files, max(1, args.workers), seed=args.seed)
        total_mb = sum(os.path.getsize(f) for f in files) / 1e6
        print(f"synthetic: {len(files)} files, {total_mb:.1f} MB in {root} ({time.perf_counter() - t0:.1f} s), "
              f"from {origin}")
        print("agcn pipeline: " + ("timed" if apply_pipeline is not None else "not importable, reader timed alone"))
        print(f"skelssl read: the {reader_in_use()} reader")
        check_same_values(files[:20])
        nbase = min(len(files), args.baseline_files or len(files))
        if nbase < len(files):
            print(f"line-by-line reader timed on the first {nbase} of the {len(files)} files")
        rows = run_set("synthetic", files, worker_counts, nbase)
        real = sorted(str(p) for p in args.real.glob("*.skeleton")) if args.real.is_dir() else []
        if real:
            check_same_values(real)
            rows += run_set("real", real * args.real_repeat, worker_counts, len(real) * args.real_repeat)
            print(f"real: {len(real)} files from {args.real}, each read {args.real_repeat} times per row")
        else:
            print(f"real: no .skeleton files at {args.real}; skipped")
        print()
        print_table(rows)
        print()
        for r in rows:
            if r["reader"] != "line-by-line" and r["procs"] == 1:
                print(f"{r['set']}: {r['reader']} is {r['speedup']:.1f}x the line-by-line reader in one process "
                      "(target >= 20x)")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
