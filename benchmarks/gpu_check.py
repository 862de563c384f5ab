"""The GPU check behind ``benchmarks/gpu_check.sh OUTDIR [--tiny]`` (see that script for the usage).

Phases, each a ``skelssl`` command in its own process (a clean peak RSS per bench), its output in
``OUTDIR/logs/<phase>.log``, killed at its share of the time budget:

1. ``skelssl bench`` of each method's paper-size NTU-60 recipe in bf16 (with the naive plug-in step)
   and in fp32: ``OUTDIR/bench-<method>-<bf16|fp32>.json``.
2. N-UCLA prepared with the ``ctrgcn`` pipeline into a temporary store, and ``skelssl bench`` of
   ``configs/mamp/nucla_xview.yaml`` on it (``bench-mamp-nucla.json``: the data-loader figure too).
3. A short full-size MAMP pre-training on N-UCLA (``trainer.max_steps`` from that bench's speed and
   the time left; warm-up 2 epochs), then ``skelssl eval linear`` (with the random-init baseline; the
   raw-input one needs no GPU) and ``skelssl eval knn`` (without baselines, to save time):
   ``pretrain.json``, ``linear/results.json``, ``knn/results.json``.

``OUTDIR/summary.json`` lists every phase (command, status, seconds, output) with every JSON row
inlined, so that it alone holds the whole check. ``--tiny`` runs the same phases on the CPU at tiny
sizes (``skelssl.jobs.bench.SMOKE_OVERRIDES``, a few steps, 289 N-UCLA clips).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from skelssl.jobs.bench import SMOKE_OVERRIDES  # noqa: E402

# The likely quickest first: time a bench leaves unused goes to the ones after it.
METHODS = ("mamp", "motion_transformer", "isc", "hitrs")
NUCLA_RECIPE = "configs/mamp/nucla_xview.yaml"
EVAL_RESERVE_S = 70  # seconds kept for the two evaluations after pre-training
NUCLA_CANDIDATES = (ROOT / "shared/data/nw_ucla/all_sqe", ROOT.parent / "shared/data/nw_ucla/all_sqe")


class Check:
    """Runs the phases against one deadline and records them."""

    def __init__(self, out: Path, tiny: bool, budget_s: float) -> None:
        self.out, self.tiny = out, tiny
        self.start = time.perf_counter()
        self.deadline = self.start + budget_s
        self.phases: list[dict[str, Any]] = []
        (out / "logs").mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
                    "PYTHONUNBUFFERED": "1"}
        if tiny:
            self.env.setdefault("OMP_NUM_THREADS", "1")

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def log(self, text: str) -> None:
        print(f"[gpu_check {time.perf_counter() - self.start:5.0f} s] {text}", flush=True)

    def run(self, name: str, args: list[str], cap_s: float, reserve_s: float = 0.0, output: str | None = None) -> dict[str, Any]:
        """``skelssl ARGS`` with a timeout of ``min(cap_s, time left - reserve_s)``; skipped under 5 s."""
        timeout = min(cap_s, self.left() - reserve_s)
        phase: dict[str, Any] = {"name": name, "command": "skelssl " + " ".join(args), "output": output}
        if timeout < 5:
            phase.update(status="skipped: out of time", seconds=0.0)
            return self._record(phase)
        log = self.out / "logs" / f"{name}.log"
        t0 = time.perf_counter()
        with open(log, "w") as f:
            try:
                rc = subprocess.run([sys.executable, "-m", "skelssl", *args], stdout=f, stderr=subprocess.STDOUT,
                                    cwd=ROOT, env=self.env, timeout=timeout).returncode
                status = "ok" if rc == 0 else f"failed (exit {rc})"
            except subprocess.TimeoutExpired:
                status = f"timed out after {timeout:.0f} s"
        phase.update(status=status, seconds=round(time.perf_counter() - t0, 1), log=str(log.relative_to(self.out)))
        if output and (self.out / output).is_file():
            phase["result"] = json.loads((self.out / output).read_text())
        return self._record(phase)

    def _record(self, phase: dict[str, Any]) -> dict[str, Any]:
        self.phases.append(phase)
        where = f" -> {phase['output']}" if phase.get("output") else ""
        self.log(f"{phase['name']}: {phase['status']} ({phase['seconds']} s){where}")
        self.write_summary()
        return phase

    def write_summary(self, **extra: Any) -> None:
        summary = {"mode": "tiny (CPU)" if self.tiny else "full (GPU)", "python": sys.executable,
                   "elapsed_s": round(time.perf_counter() - self.start, 1), "phases": self.phases, **extra}
        (self.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")


def bench_args(check: Check, recipe: str, method: str, precision: str, naive: bool, json_name: str) -> list[str]:
    """The ``skelssl bench`` arguments of one recipe at the mode's sizes."""
    args = ["bench", recipe, "--precision", precision, "--json", str(check.out / json_name)]
    if check.tiny:
        args += ["--device", "cpu", "--steps", "2", "--warmup", "1", "--batch", "4", "--frames", "40",
                 "--naive-steps", "1", *SMOKE_OVERRIDES[method]]
    else:
        args += ["--device", "cuda", "--steps", "5", "--warmup", "2", "--naive-steps", "2"]
    return args + (["--naive"] if naive else [])


def find_nucla(given: str | None) -> Path | None:
    for path in ([Path(given)] if given else list(NUCLA_CANDIDATES)):
        if path.is_dir() and any(path.glob("a*_s*_e*_v*.json")):
            return path
    return None


def nucla_source(check: Check, source: Path, work: Path) -> Path:
    """The whole release, or (``--tiny``) a folder of links to its 289 first repetitions (``_e00_``)."""
    if not check.tiny:
        return source
    subset = work / "nucla_e00"
    subset.mkdir()
    for f in sorted(source.glob("a*_s*_e00_v*.json")):
        (subset / f.name).symlink_to(f.resolve())
    return subset


def pretrain_steps(check: Check, bench: dict[str, Any] | None, budget_s: float) -> int:
    """Steps that fit ``budget_s``: the bench's training and loading rates in series, half of it used
    (the rest for start-up, a checkpoint every epoch and the kNN monitor every 5 epochs)."""
    if check.tiny:
        return 3
    if not bench or not bench.get("train_samples_per_s"):
        return 300
    rate = 1.0 / (1.0 / bench["train_samples_per_s"] + 1.0 / (bench.get("loader_samples_per_s") or float("inf")))
    return int(max(20, min(2000, 0.5 * budget_s * rate / bench["batch"])))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--tiny", action="store_true", help="CPU, tiny sizes: is the check itself working?")
    ap.add_argument("--nucla", default=None, help="the N-UCLA all_sqe folder (default: shared/data/nw_ucla/all_sqe "
                                                  "in or beside the checkout)")
    ap.add_argument("--budget", type=float, default=None, help="seconds for everything (default 465 on a GPU)")
    a = ap.parse_args()
    out = Path(a.outdir).resolve()
    budget = a.budget or (1800.0 if a.tiny else 465.0)
    check = Check(out, a.tiny, budget)
    check.log(f"start: {'tiny, CPU' if a.tiny else 'full size, GPU'}, budget {budget:.0f} s; results in {out}")
    if not a.tiny:
        probe = subprocess.run([sys.executable, "-c", "import torch, lightning_fabric, safetensors, sklearn, yaml, tqdm; "
                                "assert torch.cuda.is_available(), 'no CUDA device'"], capture_output=True, text=True)
        if probe.returncode != 0:
            why = f"preflight failed: {(probe.stderr.strip().splitlines() or ['?'])[-1]}"
            if "No module named" in why:
                why += " (carry the missing package as a wheel, e.g. lightning-fabric, and put it on PYTHONPATH)"
            check.write_summary(error=why)
            check.log(why)
            return 1

    # 1. The paper-size recipes, bf16 (with the naive step) then fp32: half of the budget at most, and
    # never the 45 % that the N-UCLA phases need.
    modes = (("bf16-mixed", "bf16", True), ("32-true", "fp32", False))
    benches = [(method, precision, tag, naive) for precision, tag, naive in modes for method in METHODS]
    bench_end = check.start + 0.5 * budget
    for i, (method, precision, tag, naive) in enumerate(benches):
        name = f"bench-{method}-{tag}"
        cap = max(20.0, (bench_end - time.perf_counter()) / (len(benches) - i))
        check.run(name, bench_args(check, f"configs/{method}/ntu60_xsub.yaml", method, precision, naive, name + ".json"),
                  cap_s=cap, reserve_s=0.45 * budget, output=name + ".json")

    # 2-3. N-UCLA: prepare, bench on the store, pre-train, evaluate.
    source = find_nucla(a.nucla)
    if source is None:
        check.write_summary(error="N-UCLA all_sqe not found (pass --nucla PATH; ../shared does not travel to a device)")
        check.log("N-UCLA not found: pass --nucla PATH")
        return 1
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    try:
        store, run = work / "nucla-ctrgcn", work / "mamp-nucla"
        check.run("prepare-nucla", ["prepare", "nucla", str(nucla_source(check, source, work)), "--out", str(store),
                                    "--pipeline", "ctrgcn", "--workers", "1" if a.tiny else "8"], cap_s=60)
        tiny_model = [*SMOKE_OVERRIDES["mamp"], "data.batch_size=8"] if a.tiny else []
        b = check.run("bench-mamp-nucla", bench_args(check, NUCLA_RECIPE, "mamp", "bf16-mixed", False, "bench-mamp-nucla.json")
                      + [f"data.store={store}"], cap_s=45, output="bench-mamp-nucla.json")
        steps = pretrain_steps(check, b.get("result"), check.left() - EVAL_RESERVE_S - 10)
        p = check.run("pretrain-mamp-nucla", ["pretrain", NUCLA_RECIPE, "--out", str(run), f"data.store={store}",
                                              f"trainer.max_steps={steps}", "schedule.warmup_epochs=2",
                                              "trainer.progress=false", *tiny_model], cap_s=1200, reserve_s=EVAL_RESERVE_S)
        p["max_steps"] = steps
        metrics = run / "metrics.jsonl"
        if metrics.is_file():
            lines = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
            p["result"] = {"max_steps": steps, "metrics": lines}
            (out / "pretrain.json").write_text(json.dumps(p["result"]) + "\n")
            p["output"] = "pretrain.json"
        check.write_summary()
        # The random-init baseline beside the linear result; kNN without it (the linear result holds it).
        # The raw-input baseline depends on no GPU and is in benchmarks/RESULTS.md: left out here.
        no_raw = ["baselines.raw_input=false"]
        for task, extra, cap, reserve in (("linear", no_raw, 60, 25), ("knn", no_raw + ["baselines.random_init=false"], 45, 0)):
            check.run(f"eval-{task}", ["eval", task, str(run), "--protocol", "nucla-xview", "--out", str(out / task), *extra],
                      cap_s=cap, reserve_s=reserve, output=f"{task}/results.json")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    failed = [p["name"] for p in check.phases if p["status"] != "ok"]
    check.write_summary(failed=failed)
    check.log(f"done: {len(check.phases) - len(failed)} of {len(check.phases)} phases ok"
              + (f"; not: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
