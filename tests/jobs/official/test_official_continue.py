"""Converted official weights go on training here: ``skelssl pretrain RECIPE --init-from CONVERTED_RUN``
(continued pre-training) and ``skelssl eval finetune CONVERTED_RUN`` (issue 18).

The converted Hi-TRS and MAMP methods are paper-size (built from the official tensor lists, random
values); the runs take one or two steps on a handful of short random clips, which takes seconds."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from _official_files import write_official
from conftest import one_line_error
from skelssl.cli import main as cli_main
from skelssl.data.store import write_store
from skelssl.engine import checkpoint as ckpt

pytestmark = pytest.mark.usefixtures("one_thread")
RECIPES = Path(__file__).resolve().parents[3] / "configs"

#: The paper recipes at the size of a test: a few clips, one process, no warm-up, no monitor.
QUICK = ["data.protocol=null", "data.batch_size=1", "trainer.accumulate=1", "trainer.precision=32-true",
         "trainer.accelerator=cpu", "trainer.progress=false", "schedule.warmup_epochs=0", "schedule.warmup_steps=0"]


def _store(path: Path, layout: str = "ntu25", persons: int = 2, n: int = 6):
    """Random clips of 24 to 40 frames (Hi-TRS needs at least 19), synthetic-xsub by subject."""
    from skelssl.core.layouts import get_layout

    rng = np.random.default_rng(0)
    v = get_layout(layout).num_joints
    samples = ((f"c{i:02d}", rng.normal(size=(int(rng.integers(24, 41)), persons, v, 3)).astype(np.float32),
                {"label": i % 2, "subject": 1 + i % 4}) for i in range(n))
    return write_store(path, samples, layout, persons, info={"dataset": "synthetic"})


@pytest.fixture(scope="module")
def ntu_store(tmp_path_factory):
    return _store(tmp_path_factory.mktemp("ntu") / "store")


def _converted(tmp_path: Path, shared_data: Path, method: str) -> Path:
    write_official(tmp_path / "official.pth", shared_data, method)
    run = tmp_path / f"{method}-official"
    assert cli_main(["convert", method, str(tmp_path / "official.pth"), "--out", str(run)]) == 0
    return run


def _pretrain(method: str, out: Path, source: Path, store, *overrides: str) -> int:
    return cli_main(["pretrain", str(RECIPES / method / "ntu60_xsub.yaml"), "--out", str(out), "--init-from", str(source),
                     f"data.store={store.path}", *QUICK, *overrides])


@pytest.mark.parametrize("method", ["hitrs", "mamp"])
def test_continued_pretraining_starts_from_the_converted_method(tmp_path, shared_data, ntu_store, method, capsys):
    """Step 0 is the converted method value for value (one step at lr 0 leaves every tensor of it as it
    was: encoder, pretext heads or decoder); two steps at the recipe's lr move it; the run records the
    file and its hash, and counts its own steps."""
    source = _converted(tmp_path, shared_data, method)
    converted, _ = ckpt.load_tensors(source / "method.safetensors")

    still = tmp_path / "still"
    assert _pretrain(method, still, source, ntu_store, "optim.lr=0", "schedule.name=constant", "trainer.max_steps=1") == 0
    capsys.readouterr()
    model = ckpt.load_checkpoint(still).model
    assert model.keys() == converted.keys()
    assert all(torch.equal(model[k], converted[k]) for k in converted if k != "step"), method
    assert int(model["step"]) == 1
    encoder, _ = ckpt.load_tensors(still / "encoder.safetensors")
    assert all(torch.equal(v, converted[f"encoder.{k}"]) for k, v in encoder.items())
    file = (source / "method.safetensors").absolute()
    assert ckpt.encoder_metadata(still)["config"]["init_from"] == {
        "path": str(file), "sha256": hashlib.sha256(file.read_bytes()).hexdigest()}

    moved = tmp_path / "moved"
    assert _pretrain(method, moved, source, ntu_store, "trainer.max_steps=2") == 0
    model = ckpt.load_checkpoint(moved).model
    heads = [k for k in converted if not k.startswith("encoder.") and k != "step" and converted[k].is_floating_point()]
    assert heads and not torch.equal(model["encoder." + _first_weight(converted)], converted["encoder." + _first_weight(converted)])
    assert any(not torch.equal(model[k], converted[k]) for k in heads)  # the pretext heads / decoder train too
    assert int(model["step"]) == 2


def _first_weight(state: dict[str, torch.Tensor]) -> str:
    """An encoder weight that every step changes (the first block's attention projection)."""
    return next(k[len("encoder."):] for k in state if k.startswith("encoder.") and k.endswith("attn.qkv.weight"))


def test_resume_of_a_continued_run_does_not_read_the_converted_run(tmp_path, shared_data, ntu_store):
    """MAMP, two steps, stopped after the first: with the converted run deleted, the resume from the
    run's config.yaml ends bit-exactly where the unbroken run ended."""
    source = _converted(tmp_path, shared_data, "mamp")
    run = tmp_path / "run"
    assert _pretrain("mamp", run, source, ntu_store, "trainer.max_steps=2", "trainer.keep_every_steps=1") == 0
    final = ckpt.load_checkpoint(run).model
    shutil.rmtree(run / "checkpoints" / "last")
    shutil.copytree(run / "checkpoints" / "step-0000001", run / "checkpoints" / "last")
    (run / "encoder.safetensors").unlink()
    shutil.rmtree(source)
    assert cli_main(["pretrain", str(run / "config.yaml"), "--out", str(run), "--resume"]) == 0
    again = ckpt.load_checkpoint(run).model
    assert all(torch.equal(final[k], again[k]) for k in final)


def test_weights_that_do_not_fit_are_refused_in_one_line(tmp_path, shared_data, ntu_store, capsys):
    source = _converted(tmp_path, shared_data, "mamp")
    capsys.readouterr()
    # Another method's recipe.
    assert _pretrain("hitrs", tmp_path / "a", source, ntu_store) == 2
    line = one_line_error(capsys)
    assert line.startswith("skelssl pretrain: error: init_from: ") and "holds a 'mamp' method; this recipe builds 'hitrs'" in line
    # The same method at another size: MAMP's NTU-60 file has a 3-block decoder, the NTU-120 recipe 5.
    assert cli_main(["pretrain", str(RECIPES / "mamp" / "ntu120_xsub.yaml"), "--out", str(tmp_path / "b"), "--init-from",
                     str(source), f"data.store={ntu_store.path}", *QUICK]) == 2
    line = one_line_error(capsys)
    assert "does not fit the mamp method of this recipe: " in line and "missing (decoder_blocks.3." in line, line
    assert not (tmp_path / "a").exists() and not (tmp_path / "b" / "config.yaml").exists()


@pytest.mark.parametrize("method, reinit", [("hitrs", ["encoder.clip_pe", "encoder.frame_pe"]),
                                             ("mamp", ["decoder_pos_embed", "encoder.pos_embed"])])
def test_another_layout_restarts_only_the_joint_tables(tmp_path, shared_data, method, reinit, capsys):
    """On N-UCLA's 20 joints (one person) the joint-dependent position tables (MAMP's decoder has one
    too) start fresh, with one warning naming them; every other tensor is the converted one."""
    source = _converted(tmp_path, shared_data, method)
    converted, _ = ckpt.load_tensors(source / "method.safetensors")
    store = _store(tmp_path / "kinect", layout="kinect20", persons=1)
    capsys.readouterr()
    run = tmp_path / "run"
    assert _pretrain(method, run, source, store, "optim.lr=0", "schedule.name=constant", "trainer.max_steps=1") == 0
    line = one_line_error(capsys)
    assert line.startswith(f"skelssl pretrain: warning: init_from: {len(reinit)} tensor"), line
    assert "(the weights': layout ntu25, persons 2)" in line and line.split("): ")[1].startswith(", ".join(reinit)), line
    model = ckpt.load_checkpoint(run).model
    assert all(model[k].shape != converted[k].shape for k in reinit)
    assert all(torch.equal(model[k], converted[k]) for k in converted if k not in reinit and k != "step")


def test_finetune_a_converted_run(tmp_path, shared_data, capsys):
    """``skelssl eval finetune`` takes a converted MAMP run like one of ours: one epoch of the paper's
    fine-tuning (MLP head on the 25 per-joint features) on two clips, tested on two, results written.
    (Two clips make one batch: the head's BatchNorm cannot train on a last batch of one clip.)"""
    source = _converted(tmp_path, shared_data, "mamp")
    store = _store(tmp_path / "ft", n=4)
    capsys.readouterr()
    assert cli_main(["eval", "finetune", str(source), "--store", str(store.path), "--protocol", "synthetic-xsub",
                     "--accelerator", "cpu", "finetune.epochs=1", "finetune.batch_size=2"]) == 0
    out = capsys.readouterr().out  # (another store than the pre-training one: named a transfer)
    assert out.startswith(("finetune synthetic-xsub: top1", "transfer synthetic-xsub: top1")), out
    results = json.loads((source / "eval" / "finetune-synthetic-xsub" / "results.json").read_text())
    assert results["train_samples"] == 2 and results["test_samples"] == 2
    assert 0.0 <= results["final"] <= 100.0 and not results.get("reinitialised")
