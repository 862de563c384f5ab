"""Wrong uses of the ``skelssl`` command, as a careful user makes them: each must end with exit status 2
and one line naming the problem (or succeed where the use is legitimate), never a traceback, and never
change a file the user had.

    python benchmarks/misuse_probe.py [--keep DIR]

Prints one markdown table: probe class | tries | one clear line | tracebacks | data lost.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import tempfile
from pathlib import Path

import yaml

from skelssl.cli import main as cli_main
from skelssl.data import synthetic

TINY = {
    "encoder": {"name": "stgcn", "kwargs": {"channels": [8], "strides": [1], "temporal_kernel": 3}},
    "method": {"name": "simclr", "kwargs": {"frames": 12, "hidden_dim": 16, "proj_dim": 8}},
    "data": {"protocol": "synthetic-xsub", "batch_size": 8, "max_frames": 40},
    "trainer": {"epochs": 1, "accelerator": "cpu", "progress": False},
    "eval": {"input": {"frames": 12, "min_frames": 8}, "probe": {"cs": [0.1, 1.0], "folds": 3}},
}


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run(argv: list[str]) -> tuple[int | None, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli_main(argv)
        except SystemExit as e:  # argparse's usage errors
            code = e.code if isinstance(e.code, int) else 2
        except BaseException as e:  # a traceback the user would see
            return None, f"{type(e).__name__}: {e}"
    return code, err.getvalue()


def probes(root: Path) -> dict[str, list[tuple[list[str], int]]]:
    """``class -> [(argv, expected exit status)]``; built on a small synthetic world under ``root``."""
    store = synthetic.write_store(root / "store", num_samples=40, layout="kinect20", seed=1, num_persons=1)
    src = root / "ds"
    src.mkdir()
    files = synthetic.write_ntu_skeleton_files(src, 6)
    mine = root / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    (root / "notes.txt").write_text("keep me")
    recipe = root / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({**TINY, "data": {**TINY["data"], "store": str(store.path)}}))
    run_dir = root / "run"
    assert cli_main(["pretrain", str(recipe), "--out", str(run_dir)]) == 0
    bad_results = root / "results-bad"
    bad_results.mkdir()
    (bad_results / "results.json").write_text("{bad")
    (bad_results / "train.log").write_text("x")
    s, r = str(store.path), str(run_dir)
    return {
        "--out over the user's data": [
            (["prepare", "ntu", str(src), "--out", str(src)], 2),
            (["prepare", "ntu", str(src), "--out", str(root), "--overwrite"], 2),
            (["prepare", "ntu", str(src), "--out", str(mine)], 2),
            (["prepare", "ntu", str(src), "--out", str(mine), "--overwrite"], 2),
            (["prepare", "ntu", str(src), "--out", str(root / "notes.txt")], 2),
            (["prepare", "ntu", str(src), "--out", s], 2),
            (["synth", "--out", str(mine), "--samples", "10"], 2),
            (["synth", "--out", str(root / "notes.txt"), "--samples", "10"], 2),
            (["merge", f"{s}:synthetic-xsub", "--out", str(mine)], 2),
            (["pretrain", str(recipe), "--out", str(mine)], 2),
            (["pretrain", str(recipe), "--out", str(root / "notes.txt")], 2),
        ],
        "prepare / synth / merge options": [
            (["prepare", "ntuu", str(src), "--out", str(root / "o1")], 2),
            (["prepare", "ntu", str(root / "nope"), "--out", str(root / "o2")], 2),
            (["prepare", "ntu", str(src), "--out", str(root / "o3"), "-o", "exclude_mising=false"], 2),
            (["prepare", "ntu", str(src), "--out", str(root / "o4"), "--persons", "0"], 2),
            (["prepare", "ntu", str(src), "--out", str(root / "o5"), "--workers", "0"], 2),
            (["prepare", "ntu", str(src), "--out", str(root / "o6"), "-o", "x=!!python/object/apply:os.system [echo]"], 2),
            (["prepare", "ntu", str(src), "--out", str(root / "o7"), "--pipeline", "agnc"], 2),
            (["synth", "--out", str(root / "o8"), "--samples", "0"], 2),
            (["merge", f"{s}:ntu60-xsub", "--out", str(root / "o9")], 2),
        ],
        "info / show / export / report": [
            (["info", str(root / "nope")], 2),
            (["info", str(mine)], 2),
            (["info", str(root / "notes.txt")], 2),
            (["show", s, "no_such_sample", "--out", str(root / "a.gif")], 2),
            (["export", "csv", s, "--out", str(root / "x.csv")], 2),
            (["report", str(root / "nope")], 2),
            (["report", str(bad_results)], 2),
            (["report", str(mine)], 2),
        ],
        "pretrain settings": [
            ([ "pretrain", str(root / "nope.yaml"), "--out", str(root / "r1")], 2),
            (["pretrain", str(recipe), "--out", str(root / "r2"), "optim.lrr=0.1"], 2),
            (["pretrain", str(recipe), "--out", str(root / "r3"), "encoder.name=stgnc"], 2),
            (["pretrain", str(recipe), "--out", str(root / "r4"), "data.batch_size=0"], 2),
            (["pretrain", str(recipe), "--out", str(root / "r5"), "trainer.epochs=-1"], 2),
            (["pretrain", str(recipe), "--out", str(root / "r6"), "data.store=/nope"], 2),
            (["pretrain", str(recipe), "--out", str(root / "r7"), "optim.lr=abc"], 2),
            (["pretrain", str(recipe), "--out", str(root / "r8"), "data.protocol=ntu60-xsub"], 2),
        ],
        "pretrain --resume": [
            (["pretrain", str(recipe), "--out", str(root / "missing"), "--resume"], 2),
            (["pretrain", str(recipe), "--out", str(mine), "--resume"], 2),
            (["pretrain", str(recipe), "--out", r, "--resume", "optim.lr=0.5"], 2),
            (["pretrain", str(recipe), "--out", r, "--resume", "trainer.seed=3"], 2),
            (["pretrain", str(run_dir / "config.yaml"), "--out", r, "--resume"], 0),  # finished: nothing to do
            (["pretrain", str(recipe), "--out", r], 2),  # not empty, no --resume
        ],
        "eval": [
            (["eval", "knnn", r, "--protocol", "synthetic-xsub"], 2),
            (["eval", "knn", str(root / "nope"), "--protocol", "synthetic-xsub"], 2),
            (["eval", "knn", r, "--protocol", "nucla-xview"], 2),
            (["eval", "linear", r, "--protocol", "synthetic-xsub", "linear.epochz=3"], 2),
            (["eval", "knn", r, "--protocol", "synthetic-xsub", "--store", str(mine)], 2),
            (["eval", "knn", str(mine), "--protocol", "synthetic-xsub"], 2),
        ],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--keep", default=None, help="build the probes here and keep them")
    args = p.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="skelssl-misuse-"))
    root.mkdir(parents=True, exist_ok=True)
    table = probes(root)
    guarded = {name: root / name for name in ("ds", "mine", "notes.txt", "store", "run")}
    print("| probe class | tries | one clear line | tracebacks | data lost |")
    print("|---|---:|---:|---:|---:|")
    totals = [0, 0, 0, 0]
    for name, cases in table.items():
        tries = clear = tracebacks = lost = 0
        for argv, expect in cases:
            before = {k: snapshot(v) if v.is_dir() else v.read_bytes() for k, v in guarded.items()}
            code, err = run(argv)
            tries += 1
            if code is None:
                tracebacks += 1
                print(f"  TRACEBACK {' '.join(argv[:2])}: {err}")
            else:
                lines = [ln for ln in err.splitlines() if ln.strip() and "warning" not in ln]
                ok = code == expect and (expect == 0 or (len(lines) == 1 and "Traceback" not in err))
                clear += ok
                if not ok:
                    print(f"  UNCLEAR (exit {code}, expected {expect}) {' '.join(argv)}: {err.strip()[:300]}")
            after = {k: snapshot(v) if v.is_dir() else v.read_bytes() for k, v in guarded.items()}
            # The finished run's eval folder may grow; everything the user had must be unchanged.
            changed = [k for k in guarded if k != "run" and before[k] != after[k]]
            changed += [k for k in before["run"] if before["run"][k] != after["run"].get(k)]
            if changed:
                lost += 1
                print(f"  DATA CHANGED by {' '.join(argv)}: {changed[:3]}")
        totals = [a + b for a, b in zip(totals, (tries, clear, tracebacks, lost))]
        print(f"| {name} | {tries} | {clear} | {tracebacks} | {lost} |", flush=True)
    print(f"| **all** | {totals[0]} | {totals[1]} | {totals[2]} | {totals[3]} |")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
