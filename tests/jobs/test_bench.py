"""``skelssl bench`` and ``benchmarks/gpu_check.sh --tiny`` on the CPU at tiny sizes.

No test asserts a speed (timings depend on the machine's load): only the output's structure, that every
measured figure is positive and finite, and that every figure left out says why.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from skelssl.cli import main as cli_main
from skelssl.engine import throughput
from skelssl.jobs.bench import SMOKE_OVERRIDES
from conftest import random_store

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--device", "cpu", "--steps", "2", "--warmup", "1", "--batch", "4", "--frames", "40"]
# Figures (None only with a reason in ``notes``) and the description of the run.
FIGURES = ("train_samples_per_s", "train_s_per_step", "train_tflop_per_step", "train_achieved_tflops",
           "train_share_of_bf16_peak", "infer_samples_per_s", "infer_s_per_batch", "loader_samples_per_s",
           "peak_host_rss_mb", "peak_gpu_train_mb", "peak_gpu_infer_mb", "naive_samples_per_s",
           "naive_fast_samples_per_s", "naive_speedup")
# A figure derived from another is explained by that one's note.
EXPLAINED_BY = {"train_achieved_tflops": ("train_tflop_per_step",),
                "train_share_of_bf16_peak": ("train_share_of_bf16_peak", "train_tflop_per_step"),
                "naive_fast_samples_per_s": ("naive_samples_per_s",), "naive_speedup": ("naive_samples_per_s",)}
ALWAYS = ("train_samples_per_s", "train_s_per_step", "infer_samples_per_s", "infer_s_per_batch", "peak_host_rss_mb")
DESCRIPTION = ("recipe", "overrides", "method", "encoder", "preset", "encoder_params_m", "device", "torch", "precision",
               "precision_requested", "input", "layout", "persons", "frames", "batch", "accumulate", "samples_per_step",
               "steps", "warmup", "loss", "loader_workers", "notes")


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def check_row(row: dict) -> None:
    """The row's structure: every key, measured figures positive and finite, reasons for the rest."""
    assert set(FIGURES) | set(DESCRIPTION) <= set(row)
    for key in ALWAYS:
        assert _positive(row[key]), (key, row[key])
    for key in FIGURES:
        if row[key] is None:
            assert any(k in row["notes"] for k in EXPLAINED_BY.get(key, (key,))), f"{key} is None without a reason"
        else:
            assert _positive(row[key]), (key, row[key])
    assert math.isfinite(row["loss"])
    assert row["samples_per_step"] == row["batch"] * row["accumulate"]
    assert all(isinstance(v, str) and v for v in row["notes"].values())


def run_cli(args: list[str], capsys) -> tuple[dict, str]:
    """``skelssl bench ARGS``: the JSON row (the output's last line) and the table above it."""
    assert cli_main(["bench", *args]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    return json.loads(lines[-1]), "\n".join(lines[:-1])


@pytest.mark.parametrize("method", ["hitrs", "isc", "mamp", "motion_transformer"])
def test_bench_every_method_on_cpu_at_tiny_size(method, tmp_path, capsys):
    out = tmp_path / "rows" / f"{method}.json"
    row, table = run_cli([str(ROOT / f"configs/{method}/ntu60_xsub.yaml"), *TINY, "--naive", "--naive-steps", "1",
                          "--json", str(out), *SMOKE_OVERRIDES[method]], capsys)
    check_row(row)
    assert json.loads(out.read_text()) == row
    assert row["method"] == method and row["input"] == "synthetic" and row["device"].startswith("cpu")
    assert (row["layout"], row["persons"], row["frames"], row["batch"]) == ("ntu25", 2, 40, 4)
    # CPU training is 32-true whatever the recipe asks (as the engine does)
    assert row["precision"] == "32-true" and row["precision_requested"] == "bf16-mixed"
    assert row["peak_gpu_train_mb"] is None and row["train_share_of_bf16_peak"] is None
    # no store here: no loader figure, and the reason names the recipe's store
    assert row["loader_samples_per_s"] is None and "not a store here" in row["notes"]["loader_samples_per_s"]
    # the naive plug-in ran at the recipe's preset, fast and naive in the same run
    assert row["naive_preset"] == row["preset"] and row["naive_batch"] == 4
    assert row["naive_speedup"] == pytest.approx(row["naive_fast_samples_per_s"] / row["naive_samples_per_s"])
    for label in ("training", "inference", "data loader alone", "peak host RSS", "naive step", "missing figures"):
        assert label in table


def test_bench_reads_the_store_when_it_exists(tmp_path, capsys):
    store = random_store(tmp_path / "store", n=12, layout="kinect20", persons=1)
    row, table = run_cli([str(ROOT / "configs/mamp/nucla_xview.yaml"), *TINY, f"data.store={store.path}",
                          *SMOKE_OVERRIDES["mamp"]], capsys)
    check_row(row)
    assert (row["input"], row["layout"], row["persons"]) == ("store", "kinect20", 1)
    assert _positive(row["loader_samples_per_s"]) and "loader_samples_per_s" not in row["notes"]
    assert row["naive_samples_per_s"] is None and "--naive" in row["notes"]["naive_samples_per_s"]


def test_bench_options_and_errors(tmp_path, capsys):
    recipe = str(ROOT / "configs/motion_transformer/ntu60_xsub.yaml")
    small = [*SMOKE_OVERRIDES["motion_transformer"]]
    # accumulation: one step is `accumulate` micro-batches; the layout and persons options shape the input
    row, _ = run_cli([recipe, *TINY, "--layout", "kinect20", "--persons", "1", "trainer.accumulate=2", *small], capsys)
    check_row(row)
    assert (row["accumulate"], row["samples_per_step"], row["layout"], row["persons"]) == (2, 8, "kinect20", 1)
    # mistakes are one line and exit status 2
    assert cli_main(["bench", recipe, *TINY, "encoder.kwargs.presett=tiny"]) == 2
    assert "presett" in capsys.readouterr().err
    assert cli_main(["bench", recipe, *TINY, "--layout", "nope17", *small]) == 2
    assert "unknown layout" in capsys.readouterr().err
    assert cli_main(["bench", str(tmp_path / "missing.yaml"), *TINY]) == 2
    if not torch.cuda.is_available():
        assert cli_main(["bench", recipe, "--device", "cuda", *small]) == 2
        assert "no CUDA device" in capsys.readouterr().err


def test_throughput_helpers():
    batch = throughput.synthetic_batch(6, frames=30, joints=20, persons=1, min_length=10)
    assert batch["x"].shape == (6, 3, 30, 20, 1)
    assert ((batch["lengths"] >= 10) & (batch["lengths"] <= 30)).all()
    for x, n in zip(batch["x"], batch["lengths"]):
        assert x[:, n:].abs().sum() == 0  # zero after each sequence's length
    calls = []
    seconds = throughput.time_steps(lambda: calls.append(1), torch.device("cpu"), steps=3, warmup=2)
    assert len(calls) == 5 and seconds >= 0
    assert throughput.count_flops(lambda: torch.randn(8, 8) @ torch.randn(8, 8)) == 2 * 8 * 8 * 8
    assert throughput.peak_tflops(torch.device("cpu")) is None
    figures, why = throughput.naive_comparison("simclr", torch.device("cpu"), batch=2, steps=1)
    assert figures is None and "throughput_simclr.py" in why


@pytest.mark.slow
def test_gpu_check_tiny_writes_every_json(tmp_path, shared_data):
    """``gpu_check.sh --tiny``: every phase of the GPU check on the CPU (about a minute)."""
    out = tmp_path / "gc"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", str(ROOT / "benchmarks/gpu_check.sh"), str(out), "--tiny",
                           "--nucla", str(shared_data / "nw_ucla/all_sqe")], env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == [] and len(summary["phases"]) == 13
    for method in ("hitrs", "isc", "mamp", "motion_transformer"):
        for tag in ("bf16", "fp32"):
            row = json.loads((out / f"bench-{method}-{tag}.json").read_text())
            check_row(row)
            assert (row["naive_samples_per_s"] is not None) == (tag == "bf16")
    nucla = json.loads((out / "bench-mamp-nucla.json").read_text())
    assert nucla["input"] == "store" and _positive(nucla["loader_samples_per_s"])
    assert json.loads((out / "pretrain.json").read_text())["metrics"]
    for task in ("linear", "knn"):
        result = json.loads((out / task / "results.json").read_text())
        assert result["task"] == task and 0 <= result["final"] <= 100
