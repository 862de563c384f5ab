"""Fault probe: how ``skelssl prepare`` copes with damaged input, as a markdown table.

Runs the probe classes of the fault suite (``tests/data/test_faults.py``: poisoned labels, wrongly
typed PYSKL annotations, coordinates no sensor produces, FIFOs, symlinks to ``/dev/zero``, dangling
and looping symlinks, unreadable entries, unusable sources, non-UTF-8 file names, garbled label
lines, damaged file contents) with randomised damage: for every try a seeded generator picks the
format, how many good items (1-4) and which damaged ones (1-4 kinds, with repeats) go into a fresh
source, in what order, and the damage itself (where a value lands, which coordinate, how a file is cut).
Then ``prepare`` runs on it and the outcome is scored:

- ``kept``: good samples in the store / good samples written;
- ``reported``: bad items found in the report's ``skipped`` list with a one-line reason / bad
  items written (a wholly unusable source counts one item, reported when ``prepare`` fails with
  one ``SkeletonFormatError`` line naming the file);
- ``tracebacks``: exceptions that escaped ``prepare`` other than that one-line error, skips a
  reader bug caused (``unexpected ...``), and hangs (a try that runs past ``--timeout``);
- ``data lost``: tries after which the source differs from before (type, mode, link target or
  bytes of any entry).

Each try runs under an alarm (``--timeout``) and the process under an address-space limit
(``--memory-gb``), so that a reader that hangs on a FIFO or reads ``/dev/zero`` forever, or a label
that would allocate a 24 GB class list, shows up as a traceback instead of stalling the machine.

Usage::

    python benchmarks/fault_probe.py                  # 40 tries per class, seed 0 (under a minute on one core)
    python benchmarks/fault_probe.py --tries 40 --seed 7
    python benchmarks/fault_probe.py --classes "FIFO as data file" --verbose
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "data"))
import test_faults as probes  # noqa: E402  (the fault suite's probe kits and scoring)


class _Hang(BaseException):
    """A try that ran past ``--timeout`` (a BaseException: a reader's ``except Exception`` must not swallow it)."""


def _alarm(signum, frame):  # noqa: ARG001
    raise _Hang("ran past the timeout (a reader blocked or read without end)")


def _kinds(rng: np.random.Generator, kinds: tuple[str, ...], fmt: str) -> list[str | None]:
    """A random order of 1-4 good items and 1-4 damaged ones drawn from ``kinds`` (one for an unusable source)."""
    if fmt == "unusable":
        return [kinds[0]]
    bad = [kinds[int(i)] for i in rng.integers(0, len(kinds), int(rng.integers(1, 5)))]
    items: list[str | None] = [None] * int(rng.integers(1, 5)) + bad
    rng.shuffle(items)
    return items


def run(tries: int, seed: int, timeout: float, workers_every: int, classes: list[str], verbose: bool,
        workdir: Path) -> list[dict]:
    rows = []
    signal.signal(signal.SIGALRM, _alarm)
    for c, name in enumerate(classes):
        entries = probes.PROBES[name]
        row = dict(name=name, tries=0, kept=0, expected=0, reported=0, bad=0, tracebacks=0, lost=0, seconds=0.0, problems=[])
        t0 = time.perf_counter()
        for t in range(tries):
            rng = np.random.default_rng([seed, c, t])
            fmt, kinds = entries[int(rng.integers(len(entries)))]
            items = _kinds(rng, kinds, fmt)
            workers = 2 if workers_every and t % workers_every == workers_every - 1 else 1
            root = workdir / f"c{c:02d}" / f"t{t:03d}"
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                case = probes.build_case(root, fmt, items, rng)
                outcome = probes.run_case(case, workers=workers)
            except _Hang as e:
                outcome = probes.Outcome(0, 0, 0, 1, 1, 0, [], [f"hang: {e}"])
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            row["tries"] += 1
            for key in ("kept", "expected", "reported", "bad", "tracebacks"):
                row[key] += getattr(outcome, key)
            row["lost"] += outcome.data_lost
            row["problems"] += [f"{fmt} {[k for k in items if k]} (workers={workers}): {p}" for p in outcome.problems]
            _cleanup(root)
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        if verbose:
            print(f"{name}: {row['tries']} tries, {len(row['problems'])} problem(s), {row['seconds']:.1f} s", file=sys.stderr)
    return rows


def _cleanup(root: Path) -> None:
    """Remove a try's folder (a mode-000 file needs its mode back first; nothing here follows a symlink)."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            if not os.path.islink(p) and os.path.isfile(p):
                os.chmod(p, 0o644)
    shutil.rmtree(root, ignore_errors=True)


def table(rows: list[dict]) -> str:
    lines = ["| probe class | tries | kept (good kept / expected) | reported (bad reported / bad items) | tracebacks | data lost |",
             "|---|---:|---:|---:|---:|---:|"]
    total = dict(tries=0, kept=0, expected=0, reported=0, bad=0, tracebacks=0, lost=0)
    for r in rows:
        lines.append(f"| {r['name']} | {r['tries']} | {r['kept']} / {r['expected']} | {r['reported']} / {r['bad']} | "
                     f"{r['tracebacks']} | {r['lost']} |")
        for k in total:
            total[k] += r[k]
    lines.append(f"| **all** | {total['tries']} | {total['kept']} / {total['expected']} | {total['reported']} / {total['bad']} | "
                 f"{total['tracebacks']} | {total['lost']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tries", type=int, default=40, help="tries per probe class (default 40)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds a try may take before it counts as a hang")
    ap.add_argument("--workers-every", type=int, default=4, help="every Nth try runs prepare with 2 workers (0: never)")
    ap.add_argument("--memory-gb", type=float, default=6.0, help="address-space limit of the process (0: none)")
    ap.add_argument("--classes", nargs="*", default=None, help="probe classes to run (default: all)")
    ap.add_argument("--workdir", type=Path, default=None, help="where the damaged sources go (default: a temp folder)")
    ap.add_argument("--verbose", action="store_true", help="print progress and every problem found")
    args = ap.parse_args(argv)
    classes = args.classes or list(probes.PROBES)
    unknown = [c for c in classes if c not in probes.PROBES]
    if unknown:
        ap.error(f"unknown probe class(es) {unknown}; known: {list(probes.PROBES)}")
    if args.memory_gb > 0:
        limit = int(args.memory_gb * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fault_probe.", dir=args.workdir) as tmp:
        rows = run(args.tries, args.seed, args.timeout, args.workers_every, classes, args.verbose, Path(tmp))
    seconds = time.perf_counter() - t0
    print(table(rows))
    print()
    print(f"{sum(r['tries'] for r in rows)} tries, seed {args.seed}, {seconds:.0f} s"
          f"{' (running as root: no mode-000 probes)' if probes.ROOT else ''}")
    problems = [(r["name"], p) for r in rows for p in r["problems"]]
    if problems:
        print(f"\n{len(problems)} problem(s):")
        for name, p in problems if args.verbose else problems[:20]:
            print(f"- {name}: {p.splitlines()[0][:300] if not args.verbose else p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
