"""A run killed with SIGKILL mid-epoch and resumed ends bit-exactly where an uninterrupted run ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from _toys import make_store
from skelssl.engine import checkpoint as ck
from skelssl.engine.logging import read_metrics

WORKER = Path(__file__).with_name("_train_toy.py")


def wait_for(predicate, proc: subprocess.Popen, timeout: float) -> None:
    """Poll until ``predicate()``; the timeout only guards against a hung worker, the test's outcome
    never depends on it."""
    end = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"training process ended early: {proc.communicate()[1][-2000:]}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError("timed out waiting for the training process")
        time.sleep(0.02)


def test_kill_and_resume_is_bit_exact(tmp_path):
    store = make_store(tmp_path / "store", n=40)
    killed_dir, ref_dir = tmp_path / "killed", tmp_path / "ref"

    # 3 epochs x 5 optimiser steps (10 micro-batches, accumulate 2), checkpoint every 2 steps.
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(store.path), str(killed_dir), "--hold-after-step", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The reference runs in this process while the other one starts (same code, one thread each).
    sys.path.insert(0, str(WORKER.parent))
    import _train_toy

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _train_toy.main([str(store.path), str(ref_dir)])
    finally:
        torch.set_num_threads(threads)

    # The worker holds (sleeps) once a checkpoint exists and step 3 is logged: the kill comes at that
    # step, not after a time, so the resumed run must also discard log lines written after its checkpoint.
    held = killed_dir / "held"
    wait_for(held.is_file, proc, timeout=600)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    at_kill = ck.load_checkpoint(killed_dir).state
    assert at_kill["step"] == 2 and at_kill["epoch"] == 0 and 0 < at_kill["batch_in_epoch"] < 10  # mid-epoch

    done = subprocess.run(
        [sys.executable, str(WORKER), str(store.path), str(killed_dir), "--resume"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]

    ref, resumed = ck.load_checkpoint(ref_dir), ck.load_checkpoint(killed_dir)
    assert ref.state["step"] == resumed.state["step"] == 15
    assert ref.model.keys() == resumed.model.keys()
    for key, value in ref.model.items():  # parameters, EMA target, queue and its pointer
        assert torch.equal(value, resumed.model[key]), key
    ref_opt, res_opt = ref.state["optimizer"]["state"], resumed.state["optimizer"]["state"]
    for idx in ref_opt:
        for name, value in ref_opt[idx].items():
            assert torch.equal(value, res_opt[idx][name]), (idx, name)
    assert torch.equal(ref.rank_state(0)["rng"]["torch"], resumed.rank_state(0)["rng"]["torch"])
    assert read_metrics(ref_dir) == read_metrics(killed_dir)


@pytest.mark.parametrize("changed", ["batch_size"])
def test_resume_refuses_a_different_geometry(tmp_path, changed):
    from lightning_fabric import Fabric

    from _toys import build_toy
    from skelssl.data.dataset import SkeletonDataset
    from skelssl.engine.config import OptimConfig, TrainerConfig
    from skelssl.engine.loop import Trainer
    from skelssl.engine.optim import optimizer_factory

    store = make_store(tmp_path / "store", n=16)
    fabric = Fabric(accelerator="cpu", devices=1)
    cfg = TrainerConfig(accelerator="cpu", max_steps=2, progress=False)
    opt = optimizer_factory(OptimConfig())
    Trainer(cfg, tmp_path / "run", fabric).fit(build_toy(), SkeletonDataset(store), batch_size=4, optimizer_factory=opt)
    with pytest.raises(ck.CheckpointError, match=changed):
        Trainer(cfg, tmp_path / "run", fabric).fit(build_toy(), SkeletonDataset(store), batch_size=2, optimizer_factory=opt, resume=True)
